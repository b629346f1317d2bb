"""The sandbox's Everifin payments: the state machine (the payer's page, the bank, expiry,
withdrawal) refuses events that do not apply; bodies breaking Everifin's limits are refused in
its error envelope; BankConnect payments need scope pis and Paygate its own client."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from aiofinaccess.sandbox import LoginFailed, Sandbox, headless_payment
from tests.support.everifin_journey import SK_IBAN

BODY = {
    "amount": 10.5,
    "currency": "EUR",
    "recipientIban": SK_IBAN,
    "recipientName": "Bob",
    "externalId": "ref-1",
}


async def paygate_token(session: aiohttp.ClientSession, sandbox: Sandbox, secret: str) -> Any:
    config = sandbox.config
    url = f"{sandbox.idp_url}/realms/{config.paygate_realm}/protocol/openid-connect/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": config.paygate_client_id,
        "client_secret": secret,
    }
    async with session.post(url, data=form) as answer:
        return answer.status, await answer.json()


async def create(sandbox: Sandbox, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        status, token = await paygate_token(session, sandbox, sandbox.config.paygate_client_secret)
        assert status == 200
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        url = f"{sandbox.paygate_url}/api/v1/link"
        async with session.post(url, json=body, headers=headers) as answer:
            return answer.status, await answer.json()


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"amount": 0}, "amount must be positive"),
        ({"amount": 1.005}, "amount has at most two decimals"),
        ({"recipientName": "x" * 141}, "recipientName has at most 140 characters"),
        ({"variableSymbol": "12345678901"}, "variableSymbol has 1 to 10 digits"),
        ({"constantSymbol": "12345"}, "constantSymbol has 1 to 4 digits"),
        ({"externalId": None}, "externalId is required"),
    ],
)
async def test_a_body_breaking_a_limit_is_refused(
    sandbox: Sandbox, change: dict[str, Any], detail: str
) -> None:
    status, answer = await create(sandbox, BODY | change)
    assert status == 400
    assert answer["errors"][0]["detail"] == detail
    assert answer["meta"] == {"status": "ERROR"}


async def test_the_payment_moves_only_along_its_states(sandbox: Sandbox) -> None:
    service = sandbox.service("everifin_payments")
    status, answer = await create(sandbox, BODY)
    assert status == 201
    payment = answer["data"]
    with pytest.raises(ValueError, match="cannot book"):
        service.steer(payment["id"], "book")  # not authorised yet
    async with aiohttp.ClientSession() as browser:
        await headless_payment(browser, payment["link"], "cancel")
        with pytest.raises(LoginFailed):  # the page is gone once it is decided
            await headless_payment(browser, payment["link"])
    assert service.payments[payment["id"]].status == "FAILED"
    _, second = await create(sandbox, BODY | {"externalId": "ref-2"})
    service.steer(second["data"]["id"], "expire")
    with pytest.raises(ValueError, match="cannot withdraw"):
        service.steer(second["data"]["id"], "withdraw")
    statuses = [event["data"]["status"] for event in service.hooks.outbox]
    assert statuses == ["CREATED", "SEEN", "FAILED", "CREATED", "EXPIRED"]


async def test_bankconnect_payments_need_scope_pis(sandbox: Sandbox) -> None:
    keycloak = sandbox.service("keycloak")
    async with aiohttp.ClientSession() as session:
        for scope, expected in (("ais", 403), ("ais pis", 201)):
            token = keycloak.seed_session("alice", scope=scope)["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(
                f"{sandbox.api_url}/v1/payments", json=BODY, headers=headers
            ) as answer:
                assert answer.status == expected


async def test_paygate_takes_only_its_own_client(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        status, answer = await paygate_token(session, sandbox, "wrong")
        assert (status, answer["error"]) == (401, "unauthorized_client")
        async with session.get(
            f"{sandbox.paygate_url}/api/v1/payments", headers={"Authorization": "Bearer x"}
        ) as refused:
            assert refused.status == 401
