"""Connection events to the app's URL: a real local aiohttp receiver checks every request with
the SDK's :func:`verify_webhook`; a 500 is retried with the same event id; a refusal is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess import TransportError
from aiofinaccess.connections import (
    ConnectionRegistry,
    ConnectionState,
    Observation,
    ReconnectRequired,
)
from aiofinaccess.errors import ConfigurationError, ValidationError
from aiofinaccess.integrations.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    sign_webhook,
    verify_webhook,
)
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock

SECRET = "whsec-0123456789abcdef"


@attrs.define
class Receiver:
    """The app's endpoint: answers from ``statuses`` in turn (then 200), verifying each."""

    clock: FakeClock
    statuses: list[int] = attrs.Factory(list)
    received: list[tuple[str, dict[str, object]]] = attrs.Factory(list)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event_id = verify_webhook(SECRET, request.headers, body, now=self.clock.wall())
        except ValidationError:
            self.refused += 1
            return web.Response(status=401)
        self.received.append((event_id, await request.json()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def receiver(clock: FakeClock) -> AsyncIterator[tuple[Receiver, str]]:
    app_receiver = Receiver(clock)
    app = web.Application()
    app.router.add_post("/hooks/aiofinaccess", app_receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield app_receiver, str(server.make_url("/hooks/aiofinaccess"))
    await server.close()


async def test_a_500_is_retried_and_the_receiver_verifies_each_try(
    receiver: tuple[Receiver, str], clock: FakeClock
) -> None:
    """One event, a 500 then a 200: two signed requests with one event id; the sender backs off
    on the injected clock."""
    app, url = receiver
    app.statuses = [500]
    registry = ConnectionRegistry(MemoryStore(), clock)
    async with aiohttp.ClientSession() as session:
        registry.subscribe(WebhookSender(url, SECRET, session=session, clock=clock))
        await registry.observe(
            "finapi", "alice", "42", Observation(blocked=ConnectionState.REVOKED)
        )
    assert app.refused == 0
    assert [event_id for event_id, _ in app.received] == ["finapi/alice/42|ReconnectRequired|1"] * 2
    body = app.received[-1][1]
    assert body == {
        "id": "finapi/alice/42|ReconnectRequired|1",
        "type": "ReconnectRequired",
        "provider": "finapi",
        "subject": "alice",
        "connection": "42",
        "state": "REVOKED",
        "episode": 1,
        "detail": "",
    }
    assert len(clock.slept) == 1  # one backoff between the two tries
    assert await registry.redeliver() == 0  # delivered: nothing left in the outbox


async def test_exhausted_tries_leave_the_event_to_redelivery(
    receiver: tuple[Receiver, str], clock: FakeClock
) -> None:
    """Every try answered 503: the sender raises, and the registry delivers it again later."""
    app, url = receiver
    app.statuses = [503] * 3
    registry = ConnectionRegistry(MemoryStore(), clock, claim_for=0.01)
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(url, SECRET, session=session, clock=clock, attempts=3)
        with pytest.raises(TransportError):
            await sender(_event())
        registry.subscribe(sender)
        app.statuses = [503] * 3
        await registry.observe("finapi", "bob", "7", Observation(blocked=ConnectionState.EXPIRED))
        assert len(app.received) == 6
        await asyncio.sleep(0.05)  # the claim runs out (the store's clock)
        assert await registry.redeliver() == 1
    assert [event_id for event_id, _ in app.received][-1] == "finapi/bob/7|ReconnectRequired|1"
    assert len(app.received) == 7


async def test_a_refusal_is_not_retried(receiver: tuple[Receiver, str], clock: FakeClock) -> None:
    """A 4xx (here: a receiver with another secret) is logged and dropped, not retried."""
    app, url = receiver
    async with aiohttp.ClientSession() as session:
        await WebhookSender(url, "another-secret-of-16+", session=session, clock=clock)(_event())
    assert (app.refused, app.received, clock.slept) == (1, [], [])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": b'{"id":"x","type":"ReconnectRequired","extra":1}'}, "signature"),
        ({"secret": "not-the-secret-at-all"}, "signature"),
        ({"now": 1_800_000_000.0 + 301}, "tolerance"),
        ({"drop": TIMESTAMP_HEADER}, "missing"),
    ],
)
def test_verify_refuses_tampering_replays_and_gaps(change: dict[str, object], reason: str) -> None:
    """A changed body, another secret, an old timestamp or a missing header is refused."""
    body = b'{"id":"x","type":"ReconnectRequired"}'
    stamp = 1_800_000_000
    headers = {
        "Aiofinaccess-Event-Id": "x",
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign_webhook(SECRET, stamp, body),
    }
    assert verify_webhook(SECRET, headers, body, now=stamp) == "x"
    headers.pop(str(change.get("drop", "")), None)
    with pytest.raises(ValidationError, match=reason):
        verify_webhook(
            str(change.get("secret", SECRET)),
            headers,
            change.get("body", body),  # type: ignore[arg-type]
            now=float(change.get("now", stamp)),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({SIGNATURE_HEADER: "v1=\u00e9t\u00e9"}, None),  # latin-1 bytes, as a server decodes them
        ({TIMESTAMP_HEADER: "1_800_000_000"}, None),  # int() reads it; no sender writes it
        ({TIMESTAMP_HEADER: "\u0661800000000"}, None),  # an Arabic-Indic digit
        ({}, b"[1]"),  # signed, but not an event
        ({}, b"not json"),
    ],
    ids=["non-ascii-signature", "underscored-stamp", "unicode-digit", "array", "not-json"],
)
def test_verify_refuses_odd_headers_and_bodies_typed(
    headers: dict[str, str], body: bytes | None
) -> None:
    """Whatever the headers or the (signed) body hold, a refusal is a ValidationError."""
    stamp = 1_800_000_000
    sent = b'{"id":"x"}' if body is None else body
    given = {
        "Aiofinaccess-Event-Id": "x",
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign_webhook(SECRET, stamp, sent),
        **headers,
    }
    with pytest.raises(ValidationError):
        verify_webhook(SECRET, given, sent, now=stamp)


def test_a_short_secret_is_refused() -> None:
    """Fewer than 16 bytes of secret is a configuration error."""
    with pytest.raises(ConfigurationError):
        sign_webhook("short", 0, b"")


def _event() -> ReconnectRequired:
    return ReconnectRequired("id-1", "finapi", "carol", "9", ConnectionState.EXPIRED, 1)


async def test_the_senders_repr_names_the_origin_only_and_a_bad_url_is_refused() -> None:
    """A receiving URL often carries its own secret (a path token, a query key): the repr,
    which lands in logs, shows the origin alone; a URL that is no http(s) URL is an
    operator's typo, refused when the sender is made rather than at the first event."""
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(
            "https://app.example:8443/hooks/k-0123456789?key=s3cr3t", SECRET, session=session
        )
        assert "s3cr3t" not in repr(sender)
        assert "k-0123456789" not in repr(sender)
        assert "https://app.example:8443" in repr(sender)
        for url in ("htps://app.example/hooks", "/hooks", "https:///hooks", "app.example"):
            with pytest.raises(ConfigurationError):
                WebhookSender(url, SECRET, session=session)
