"""A payment-creating request is never sent twice by the SDK once it may have reached the
server: a real local server reads each request in full and closes the connection unanswered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from aiofinaccess import ClientCredentials, Oidc, RetryPolicy, Schedule, SessionManager, TokenSet
from aiofinaccess.api.pipeline import ApiClient, Endpoint
from aiofinaccess.errors import TransportError
from aiofinaccess.finapi import PaymentRoutes
from aiofinaccess.payments import new_reference


class Swallower:
    """Reads every request (headers and body), records it, and hangs up without answering."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (request line, X-Request-Id)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
        fields = {name.lower(): value for name, value in headers.items()}
        await reader.readexactly(int(fields.get("content-length", "0")))
        self.requests.append((head[0], fields.get("x-request-id", "")))
        writer.close()  # the request was read: it may have been processed


@pytest.fixture
async def swallowing() -> AsyncIterator[tuple[Swallower, ApiClient]]:
    swallower = Swallower()
    server = await asyncio.start_server(swallower.serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with SessionManager(schedule=Schedule(enabled=False)) as manager:
        manager.register(
            Oidc.endpoints(name="api", token_url=base + "/token", api_url=base),
            ClientCredentials("c", "s"),
        )
        now = time.time()
        token = TokenSet(access_token="AT", refresh_token="RT", issued_at=now, expires_at=now + 300)
        await manager.store_token_set("api", "u", token)
        retry = RetryPolicy(initial=0.001, max_wait=0.01)
        yield swallower, ApiClient(manager, "api", retry=retry)
    server.close()
    await server.wait_closed()


async def test_a_payment_post_read_by_the_server_is_sent_once(
    swallowing: tuple[Swallower, ApiClient],
) -> None:
    swallower, client = swallowing
    reference = new_reference()
    body = {"accountId": 1, "moneyTransfers": [{"amount": 1.0}]}
    with pytest.raises(TransportError) as failed:
        await client.call(
            PaymentRoutes().money_transfers, subject="u", json=body, request_id=reference
        )
    assert failed.value.request_sent
    assert swallower.requests == [("POST /payments/moneyTransfers HTTP/1.1", reference)]


async def test_the_same_failure_on_a_get_is_retried(
    swallowing: tuple[Swallower, ApiClient],
) -> None:
    """The control: the server's hang-up is a retryable failure, held back for payments only."""
    swallower, client = swallowing
    with pytest.raises(TransportError):
        await client.call(Endpoint("GET", "/payments"), subject="u")
    # Each of the SDK's attempts; aiohttp itself also re-sends an idempotent request once
    # when a connection closes unanswered, never a POST.
    assert len(swallower.requests) >= RetryPolicy().attempts
    assert len({request_id for _, request_id in swallower.requests}) == 1  # one request, resent
