"""Paygate's webhooks, received: Everifin's deliveries from the sandbox (retried, duplicated,
reordered) give one state change per event and leave each payment at its newest status; a
request that is not a signed event of bounded size is refused with its status; a handler that
fails gets the event again on redelivery. aiohttp.web and Starlette mount the same receiver."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections import Counter
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from starlette.applications import Starlette

from aiofinaccess import SessionManager
from aiofinaccess.api.money import Money
from aiofinaccess.everifin import EventLog, Paygate, PaygateEvent, PaymentOrder, Verdict
from aiofinaccess.integrations.paygate_webhooks import PaygateWebhooks
from aiofinaccess.integrations.starlette import paygate_route
from aiofinaccess.payments import new_reference
from aiofinaccess.sandbox import Sandbox, SandboxConfig, headless_payment
from tests.support.everifin_journey import SK_IBAN, with_paygate

SECRET = "paygate-sandbox-webhook-secret"


def event(event_id: str, second: int, status: str, payment: str = "p1") -> PaygateEvent:
    moment = dt.datetime(2026, 12, 6, 12, 0, second, tzinfo=dt.UTC)
    return PaygateEvent(event_id, "payment.statusChange", moment, f"payment:{payment}", status)


def test_the_log_applies_each_event_once_and_never_an_older_one() -> None:
    log = EventLog()
    seen = event("e2", 2, "PROCESSING")
    assert log.begin(seen) is Verdict.APPLY
    log.done(seen)
    assert log.begin(seen) is Verdict.DUPLICATE
    assert log.begin(event("e1", 1, "SEEN")) is Verdict.STALE  # came late
    assert log.begin(event("e9", 1, "SEEN", payment="p2")) is Verdict.APPLY  # another payment
    failing = event("e3", 3, "BOOKED")
    assert log.begin(failing) is Verdict.APPLY
    assert log.begin(failing) is Verdict.DUPLICATE  # while it is being applied
    log.failed(failing)
    assert log.begin(failing) is Verdict.APPLY  # the redelivery
    assert log.counts == {"applied": 3, "duplicate": 2, "stale": 1}


def test_the_log_forgets_the_oldest_beyond_its_bound() -> None:
    log = EventLog(keep=2)
    for n in range(3):
        done = event(f"e{n}", n, "SEEN", payment=f"p{n}")
        log.begin(done)
        log.done(done)
    assert log.begin(event("e0", 0, "SEEN", payment="p0")) is Verdict.APPLY
    assert log.begin(event("e2", 2, "SEEN", payment="p2")) is Verdict.DUPLICATE


class App:
    """The app's side: each payment's status, and every change applied."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.changes: list[str] = []

    async def on_event(self, received: PaygateEvent) -> None:
        assert received.payment_id is not None
        assert received.status is not None
        self.status[received.payment_id] = received.status
        self.changes.append(received.event_id)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        paygate_webhook_duplicates=0.5, paygate_webhook_reorder=True, paygate_webhook_hold=True
    )


async def test_duplicates_and_reordering_give_one_state_change_per_event(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    app = App()
    webhooks = PaygateWebhooks(app.on_event, secret=SECRET)
    server = web.Application()
    server.add_routes([webhooks.aiohttp_route("/hooks/paygate")])
    async with TestServer(server) as hooks:
        sandbox.config.paygate_webhook_url = str(hooks.make_url("/hooks/paygate"))
        with_paygate(sandbox_manager, sandbox)
        paygate = Paygate(sandbox_manager)
        service = sandbox.service("everifin_payments")
        sandbox.state.rng.seed(7)
        made = []
        for n in range(6):
            order = PaymentOrder(Money(n + 1), SK_IBAN, "Shop")
            made.append(await paygate.create_link(order, reference=new_reference()))
        async with aiohttp.ClientSession() as browser:
            for payment in made[:4]:
                assert payment.link is not None
                await headless_payment(browser, payment.link)
        for payment in made[:2]:
            service.steer(payment.id, "book")
        service.steer(made[2].id, "fail")
        await paygate.withdraw(made[4].id)
        service.steer(made[5].id, "expire")
        sent = list(service.hooks.outbox)
        await service.hooks.deliver()
    deliveries = Counter(e["eventId"] for e in service.hooks.delivered)
    assert set(deliveries) == {e["eventId"] for e in sent}  # every event arrived
    assert max(deliveries.values()) > 1  # some twice
    assert webhooks.log.counts["duplicate"] > 0
    assert webhooks.log.counts["stale"] > 0
    assert len(app.changes) == len(set(app.changes))  # one state change per event at most
    assert len(app.changes) == webhooks.log.counts["applied"]
    assert app.status == {p.id: service.payments[p.id].status for p in made}  # the newest
    assert [app.status[p.id] for p in made] == [
        "BOOKED",
        "BOOKED",
        "FAILED",
        "PROCESSING",
        "WITHDRAWN",
        "EXPIRED",
    ]


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Everifin-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


BODY = json.dumps(
    {
        "eventId": "evt-1",
        "eventType": "payment.statusChange",
        "eventTimestamp": "2026-12-06T12:00:00.000Z",
        "data": {"paymentId": "p1", "status": "BOOKED", "externalId": "ref-1"},
    }
).encode()


@pytest.mark.parametrize(
    ("body", "headers", "status", "result"),
    [
        (BODY, signed(BODY), 200, "applied"),
        (BODY, {}, 401, "signature missing or wrong"),
        (BODY, signed(BODY, "another-secret-of-16"), 401, "signature missing or wrong"),
        (b"[1, 2]", signed(b"[1, 2]"), 400, "not a Paygate event"),
        (b'{"eventId": "e"}', signed(b'{"eventId": "e"}'), 400, "not a Paygate event"),
        (b"x" * 70_000, signed(b"x" * 70_000), 413, "body over 65536 bytes"),
    ],
)
async def test_starlette_answers_each_request_with_its_status(
    body: bytes, headers: dict[str, str], status: int, result: str
) -> None:
    app = App()
    webhooks = PaygateWebhooks(app.on_event, secret=SECRET)
    asgi = Starlette(routes=[paygate_route(webhooks, "/hooks/paygate")])
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        answer = await client.post("/hooks/paygate", content=body, headers=headers)
        assert (answer.status_code, answer.json()) == (status, {"result": result})
        again = await client.post("/hooks/paygate", content=body, headers=headers)
    assert len(app.changes) == (1 if status == 200 else 0)
    if status == 200:
        assert again.json() == {"result": "duplicate"}
        assert app.status == {"p1": "BOOKED"}


async def test_an_event_whose_handler_failed_is_applied_on_redelivery() -> None:
    calls: list[Any] = []

    async def flaky(received: PaygateEvent) -> None:
        calls.append(received.event_id)
        if len(calls) == 1:
            raise RuntimeError("database down")

    webhooks = PaygateWebhooks(flaky)  # unsigned: no secret configured
    first = await webhooks.receive(BODY, {})
    second = await webhooks.receive(BODY, {})
    third = await webhooks.receive(BODY, {})
    assert [(r.status, r.result) for r in (first, second, third)] == [
        (500, "handler failed"),
        (200, "applied"),
        (200, "duplicate"),
    ]
    assert calls == ["evt-1", "evt-1"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"\xff\xfe",
        b'{"eventId": 1, "eventType": "x", "eventTimestamp": "now", "data": {}}',
        b'{"eventId": "e", "eventType": "x", "eventTimestamp": "2026-12-06T12:00:00Z",'
        b' "data": {"status": "BOOKED"}}',  # about nothing
        b"[" * 5000 + b"]" * 5000,
    ],
)
async def test_anything_but_an_event_is_a_400(body: bytes) -> None:
    receipt = await PaygateWebhooks(App().on_event).receive(body, {})
    assert (receipt.status, receipt.event) == (400, None)
