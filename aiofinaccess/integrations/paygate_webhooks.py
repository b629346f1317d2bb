"""Paygate's webhooks, received: one route for aiohttp.web or Starlette that reads each request
(bounded), checks its signature when a secret is configured, deduplicates and orders it
(:class:`~aiofinaccess.api.everifin.paygate_events.EventLog`), and hands each new event to the
app once.

    webhooks = PaygateWebhooks(on_event, secret=os.environ["PAYGATE_HOOK_SECRET"])
    app.add_routes([webhooks.aiohttp_route("/hooks/paygate")])      # aiohttp.web
    routes.append(paygate_route(webhooks, "/hooks/paygate"))        # Starlette, FastAPI
    # (paygate_route: aiofinaccess.integrations.starlette)

Answers: 200 with ``{"result": "applied" | "duplicate" | "stale"}`` (a duplicate or an event
older than the last applied one is acknowledged, not applied, so Everifin stops retrying it);
400, 401 or 413 for a request that is not a signed event of bounded size; 500 when ``on_event``
raised (the event is forgotten, so Everifin's retry applies it); 503 when another process is
applying an event of the same payment (``busy``) or the store failed, so Everifin retries.

The default log is in memory: it knows what this process applied since it started. With
several receiving processes, or to survive a restart (an old event replayed after it would
otherwise roll a payment's status back), pass ``log=StoredEventLog(store)``
(:class:`~aiofinaccess.api.everifin.paygate_journal.StoredEventLog`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..api.everifin.paygate_events import (
    MAX_BODY,
    SIGNATURE_HEADER,
    EventLog,
    PaygateEvent,
    Verdict,
    check_signature,
    read_event,
    secret_bytes,
)
from ..api.everifin.paygate_journal import StoredEventLog
from ..core.errors import StoreError, WebhookRejected
from ..core.tokens import Secret

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["PaygateWebhooks", "Receipt"]

logger = logging.getLogger("aiofinaccess")

OnEvent = Callable[[PaygateEvent], Awaitable[None]]


@attrs.frozen(slots=True)
class Receipt:
    """What the receiver answered: ``status`` and the ``result`` (a verdict or why refused)."""

    status: int
    result: str
    event: PaygateEvent | None = None


class PaygateWebhooks:
    """The receiver (see the module's docstring).

    Args:
        on_event: The app's handler, awaited once per new event, in arrival order per subject.
        secret: The webhook secret; without one (``None``), signatures are not checked.
        signature_header: Where the signature is (UNCERTAIN default).
        max_body: Bytes a request may carry.
        log: Which events were applied: a fresh in-memory one by default, a
            :class:`~aiofinaccess.api.everifin.paygate_journal.StoredEventLog` to share it
            between processes and restarts.

    Raises:
        ConfigurationError: ``secret`` is empty or blank.
    """

    def __init__(
        self,
        on_event: OnEvent,
        *,
        secret: Secret | str | bytes | None = None,
        signature_header: str = SIGNATURE_HEADER,
        max_body: int = MAX_BODY,
        log: EventLog | StoredEventLog | None = None,
    ) -> None:
        self._on_event = on_event
        if secret is not None:
            secret_bytes(secret)  # or raise: an empty secret signs nothing
        else:  # a choice (Everifin's scheme is UNCERTAIN), or a variable left unset: say so
            logger.warning(
                "paygate webhooks: no secret, so signatures are not checked (pass secret=...)"
            )
        self._secret = secret
        self._header = signature_header
        self.max_body = max_body
        self.log = log or EventLog()
        self._lock = asyncio.Lock()  # one event applied at a time: "older" stays meaningful

    def __repr__(self) -> str:
        return f"PaygateWebhooks(signed={self._secret is not None})"

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Judge and apply one request's body; the answer to give."""
        try:
            if len(body) > self.max_body:
                raise WebhookRejected(413, f"body over {self.max_body} bytes")
            if self._secret is not None:
                check_signature(body, headers, self._secret, header=self._header)
            event = read_event(body, max_body=self.max_body)
        except WebhookRejected as rejected:
            logger.warning("paygate webhook refused: %s", rejected)
            return Receipt(rejected.status, str(rejected))
        async with self._lock:
            try:
                verdict = await self._begin(event)
            except StoreError as error:
                logger.warning("paygate webhook %s: the store failed (%s)", event.event_id, error)
                return Receipt(503, "store unavailable", event)
            if verdict is not Verdict.APPLY:
                return Receipt(503 if verdict is Verdict.BUSY else 200, verdict.value, event)
            try:
                await self._on_event(event)
            except Exception:
                await self._end(event, applied=False)
                logger.exception("paygate webhook %s: the handler failed", event.event_id)
                return Receipt(500, "handler failed", event)
            await self._end(event, applied=True)
        return Receipt(200, verdict.value, event)

    async def _begin(self, event: PaygateEvent) -> Verdict:
        if isinstance(self.log, StoredEventLog):
            return await self.log.begin(event)
        return self.log.begin(event)

    async def _end(self, event: PaygateEvent, *, applied: bool) -> None:
        """Record how applying ``event`` ended; a failed store leaves its claim to lapse."""
        log = self.log
        try:
            if isinstance(log, StoredEventLog):
                await (log.done(event) if applied else log.failed(event))
            elif applied:
                log.done(event)
            else:
                log.failed(event)
        except StoreError as error:
            logger.warning("paygate webhook %s: not recorded (%s)", event.event_id, error)

    async def bounded(self, chunks: Any) -> bytes | None:
        """The body from an async iterator of chunks, or ``None`` once over the bound."""
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > self.max_body:
                return None
        return bytes(body)

    def aiohttp_route(self, path: str) -> web.RouteDef:
        """A ``POST`` route for ``aiohttp.web``."""
        from aiohttp import web  # noqa: PLC0415  (only the framework in use is imported)

        async def handler(request: web.Request) -> web.Response:
            if (request.content_length or 0) > self.max_body:
                body = None
            else:
                body = await self.bounded(request.content.iter_chunked(16384))
            receipt = await self.answer(body, request.headers)
            return web.json_response({"result": receipt.result}, status=receipt.status)

        return web.post(path, handler)

    async def answer(self, body: bytes | None, headers: Mapping[str, str]) -> Receipt:
        """:meth:`receive`, or 413 for a body that was over the bound (``None``)."""
        if body is None:
            return Receipt(413, f"body over {self.max_body} bytes")
        return await self.receive(body, headers)
