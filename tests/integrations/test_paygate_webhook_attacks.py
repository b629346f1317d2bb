"""Paygate's webhook receiver under attack and misconfiguration, over a real aiohttp server:
a signature header that is not UTF-8 is a 401, not a crash; an empty secret (an unset
environment variable read with a default) is refused when the receiver is built, since anyone
can sign with it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess.errors import ConfigurationError
from aiofinaccess.everifin import PaygateEvent
from aiofinaccess.integrations.paygate_webhooks import PaygateWebhooks

SECRET = "paygate-webhook-secret"
BODY = json.dumps(
    {
        "eventId": "e1",
        "eventType": "payment.statusChange",
        "eventTimestamp": "2026-12-06T12:00:00Z",
        "data": {"paymentId": "p1", "status": "PAID"},
    }
).encode()


async def raw_post(server: TestServer, signature: bytes) -> bytes:
    """POST ``BODY`` with a signature header of raw bytes; the status line."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = (
        b"POST /hooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
        b"X-Everifin-Signature: " + signature + b"\r\nConnection: close\r\n\r\n"
    )
    writer.write(head + BODY)
    await writer.drain()
    status = await reader.readline()
    writer.close()
    return status


async def test_a_signature_that_is_not_utf8_is_refused_not_a_crash() -> None:
    applied: list[PaygateEvent] = []

    async def on_event(event: PaygateEvent) -> None:
        applied.append(event)

    webhooks = PaygateWebhooks(on_event, secret=SECRET)
    app = web.Application()
    app.add_routes([webhooks.aiohttp_route("/hooks")])
    async with TestServer(app) as server:
        assert b" 401 " in await raw_post(server, b"sha256=\xff\xfe")
        good = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest().upper()
        assert b" 200 " in await raw_post(server, b"SHA256=" + good.encode())
    assert [event.event_id for event in applied] == ["e1"]


@pytest.mark.parametrize("secret", ["", b"", "   "])
def test_an_empty_secret_is_a_configuration_error(secret: str | bytes) -> None:
    async def on_event(event: PaygateEvent) -> None:
        raise AssertionError

    with pytest.raises(ConfigurationError, match="secret"):
        PaygateWebhooks(on_event, secret=secret)


def test_a_receiver_without_a_secret_says_so_once_when_built(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def on_event(event: PaygateEvent) -> None:
        raise AssertionError

    with caplog.at_level("WARNING", logger="aiofinaccess"):
        PaygateWebhooks(on_event)
        PaygateWebhooks(on_event, secret=SECRET)
    assert [r.getMessage() for r in caplog.records if "secret" in r.getMessage()] == [
        "paygate webhooks: no secret, so signatures are not checked (pass secret=...)"
    ]
