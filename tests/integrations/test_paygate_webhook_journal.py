"""Paygate's webhooks received by two processes sharing a store (two aiohttp servers, two
SQLite stores on one file): Everifin's duplicates and late events reach either, and a receiver
that restarts keeps what it applied, so each event changes the app's state once, never back to
an older status. A receiver that died while applying an event leaves it to the next delivery
once its claim lapses; two events of one payment are never applied at once."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess.api.everifin.paygate_events import read_event
from aiofinaccess.everifin import PaygateEvent, StoredEventLog, Verdict
from aiofinaccess.integrations.paygate_webhooks import PaygateWebhooks
from aiofinaccess.stores.sqlite import SQLiteStore
from tests.support.fakes import FakeClock


def body(event_id: str, second: int, status: str) -> bytes:
    return json.dumps(
        {
            "eventId": event_id,
            "eventType": "payment.statusChange",
            "eventTimestamp": f"2026-12-06T12:00:{second:02d}Z",
            "data": {"paymentId": "p1", "status": status},
        }
    ).encode()


async def deliver(server: TestServer, data: bytes) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url("/hooks"), data=data) as response,
    ):
        return response.status, (await response.json())["result"]


async def test_two_receivers_and_a_restart_apply_each_event_once(tmp_path: Path) -> None:
    applied: list[tuple[str, str | None]] = []

    async def on_event(event: PaygateEvent) -> None:
        applied.append((event.event_id, event.status))

    path = tmp_path / "hooks.db"
    answers = []
    async with SQLiteStore(path) as store_a, SQLiteStore(path) as store_b:
        servers = []
        for store in (store_a, store_b):
            app = web.Application()
            webhooks = PaygateWebhooks(on_event, log=StoredEventLog(store))
            app.add_routes([webhooks.aiohttp_route("/hooks")])
            servers.append(TestServer(app))
        a, b = servers
        async with a, b:
            answers.append(await deliver(a, body("e2", 2, "PROCESSING")))
            answers.append(await deliver(b, body("e2", 2, "PROCESSING")))  # a duplicate
            answers.append(await deliver(b, body("e1", 1, "CREATED")))  # came late
            answers.append(await deliver(b, body("e3", 3, "PAID")))
        async with SQLiteStore(path) as store_c:  # a restarted receiver, an old event replayed
            app = web.Application()
            app.add_routes(
                [PaygateWebhooks(on_event, log=StoredEventLog(store_c)).aiohttp_route("/hooks")]
            )
            async with TestServer(app) as c:
                answers.append(await deliver(c, body("e2", 2, "PROCESSING")))
                answers.append(await deliver(c, body("e0", 0, "CREATED")))
    assert answers == [
        (200, "applied"),
        (200, "duplicate"),
        (200, "stale"),
        (200, "applied"),
        (200, "duplicate"),
        (200, "stale"),
    ]
    assert applied == [("e2", "PROCESSING"), ("e3", "PAID")]


async def test_a_claim_lapses_and_one_payment_is_applied_one_event_at_a_time(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with SQLiteStore(tmp_path / "hooks.db") as store:
        one, two = StoredEventLog(store, clock=clock), StoredEventLog(store, clock=clock)
        e2 = read_event(body("e2", 2, "PROCESSING"))
        e3 = read_event(body("e3", 3, "PAID"))
        assert await one.begin(e2) is Verdict.APPLY  # then this receiver dies
        assert await two.begin(e2) is Verdict.DUPLICATE  # being applied
        assert await two.begin(e3) is Verdict.BUSY  # its payment is being changed: retry later
        clock.advance(one.claim_for + 1)
        assert await two.begin(e3) is Verdict.APPLY
        await two.done(e3)
        assert await two.begin(e2) is Verdict.STALE  # e3 is newer, and e2 was never done
        failing = read_event(body("e4", 4, "BOOKED"))
        assert await one.begin(failing) is Verdict.APPLY
        await one.failed(failing)
        assert await two.begin(failing) is Verdict.APPLY  # the redelivery


async def test_an_event_naming_an_overlong_id_is_a_400(tmp_path: Path) -> None:
    async def on_event(event: PaygateEvent) -> None:
        raise AssertionError

    async with SQLiteStore(tmp_path / "hooks.db") as store:
        webhooks = PaygateWebhooks(on_event, log=StoredEventLog(store))
        for data in ({"paymentId": "p" * 600, "status": "PAID"}, {"paymentId": "p1"}):
            event_id = "e" * 600 if "status" not in data else "e1"
            sent = json.dumps(
                {
                    "eventId": event_id,
                    "eventType": "payment.statusChange",
                    "eventTimestamp": "2026-12-06T12:00:00Z",
                    "data": data,
                }
            ).encode()
            receipt = await webhooks.receive(sent, {})
            assert (receipt.status, receipt.event) == (400, None)
