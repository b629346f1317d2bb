"""Contract: notification rules, as the SDK sends and reads them and as the sandbox answers,
validate against finAPI's Access v1 spec (tests/specs/finapi-access-v1-rules.yaml): create,
list (with its filters), get, delete one and delete all, and their refusals."""

from __future__ import annotations

import re

import aiohttp
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.core.errors import NotFoundError, ValidationError
from aiofinaccess.finapi import NewUser, NotificationRule, NotificationRules, TriggerEvent, Users
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from tests.support.contract import access_spec, validate_exchange

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")

USER = "contract-rules"
RULES = access_spec("finapi-access-v1-rules.yaml")


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(finapi_version="v1", record_requests=True)


async def test_every_rules_exchange_validates(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    await Users(sandbox_manager).create_and_login(NewUser(id=USER, password="rules-password"))
    rules = NotificationRules(sandbox_manager)
    login = await rules.create(
        USER, TriggerEvent.BANK_LOGIN_ERROR, callback_handle='afa:{"u":"x"}/=%'
    )
    assert login == NotificationRule(
        login.id, "BANK_LOGIN_ERROR", 'afa:{"u":"x"}/=%', include_details=False
    )
    money = await rules.create(
        USER,
        "NEW_TRANSACTIONS",
        params={"accountIds": "1,2"},
        include_details=True,
    )
    assert money.params == {"accountIds": "1,2"}
    assert money.callback_handle is None
    assert await rules.list(USER) == [login, money]
    assert await rules.list(USER, trigger_event=TriggerEvent.NEW_TRANSACTIONS) == [money]
    assert await rules.get(USER, login.id) == login
    await rules.delete(USER, login.id)
    with pytest.raises(NotFoundError):
        await rules.get(USER, login.id)
    with pytest.raises(NotFoundError):
        await rules.delete(USER, login.id)
    assert await rules.delete_all(USER) == [money.id]
    assert await rules.list(USER) == []
    for bad in (
        lambda: rules.create(USER, "NEW_WEATHER"),
        lambda: rules.create(USER, TriggerEvent.NEW_TRANSACTIONS, callback_handle="a" * 513),
        lambda: rules.create(USER, TriggerEvent.NEW_TRANSACTIONS, callback_handle="tab\there"),
    ):
        with pytest.raises(ValidationError):
            await bad()
    async with aiohttp.ClientSession() as http:  # what the SDK refuses to send
        token = await sandbox_manager.access_token("finapi", USER)
        base = sandbox.base_url + "/api/v1/notificationRules"
        for body, auth, status in (
            ({"triggerEvent": "NEW_WEATHER"}, True, 400),
            ({"triggerEvent": "NEW_TRANSACTIONS"}, False, 401),
        ):
            headers = {"Authorization": f"Bearer {token}"} if auth else {}
            async with http.post(base, json=body, headers=headers) as response:
                assert response.status == status
    seen = set()
    for exchange in sandbox.state.journal:
        if exchange.path.startswith("/api/v1/notificationRules"):
            refused = exchange.status in (400, 401)
            validate_exchange(RULES, "https://sandbox.finapi.io", exchange, request_too=not refused)
            path = re.sub(r"/\d+$", "/{id}", exchange.path)
            seen.add((exchange.method, path, exchange.status))
    assert seen >= {
        ("POST", "/api/v1/notificationRules", 201),
        ("POST", "/api/v1/notificationRules", 400),
        ("POST", "/api/v1/notificationRules", 401),
        ("GET", "/api/v1/notificationRules", 200),
        ("DELETE", "/api/v1/notificationRules", 200),
        ("GET", "/api/v1/notificationRules/{id}", 200),
        ("GET", "/api/v1/notificationRules/{id}", 404),
        ("DELETE", "/api/v1/notificationRules/{id}", 200),
        ("DELETE", "/api/v1/notificationRules/{id}", 404),
    }
