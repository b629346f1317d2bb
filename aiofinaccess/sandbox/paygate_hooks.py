"""Paygate's webhooks, emulated: events queued as payments change, delivered as Everifin does.

Each event goes to ``paygate_webhook_url``, signed (the hex HMAC-SHA256 of the body, keyed by
``paygate_webhook_secret``, in ``X-Everifin-Signature``: the real scheme is not public);
:meth:`PaygateHooks.deliver` sends what is queued: each event retried until a 2xx
(``paygate_webhook_attempts`` tries), some twice (``paygate_webhook_duplicates``), the batch in
a shuffled order when ``paygate_webhook_reorder``. Unless ``paygate_webhook_hold``, each event
starts a delivery at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import itertools
import json
from typing import Any, Final

import aiohttp

from .bankconnect import _iso
from .state import SandboxState

__all__ = ["SIGNATURE_HEADER", "PaygateHooks"]

SIGNATURE_HEADER: Final = "X-Everifin-Signature"


class PaygateHooks:
    """The outbox of Paygate's webhook events, and their deliveries."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.outbox: list[dict[str, Any]] = []
        #: Every event as often as a delivery of it was answered 2xx.
        self.delivered: list[dict[str, Any]] = []
        self._events = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_ms = 0

    def queue(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue an event about ``data`` (and deliver it, unless held)."""
        # a later event is stamped later, to the millisecond the wire carries
        self._last_ms = max(int(self.state.clock.now() * 1000), self._last_ms + 1)
        stamp = dt.datetime.fromtimestamp(self._last_ms // 1000, dt.UTC)
        self.outbox.append(
            {
                "eventId": f"evt-{next(self._events):06d}",
                "eventType": event_type,
                "eventTimestamp": _iso(stamp + dt.timedelta(milliseconds=self._last_ms % 1000)),
                "data": data,
            }
        )
        config = self.state.config
        if not config.paygate_webhook_hold and config.paygate_webhook_url:
            task = asyncio.ensure_future(self.deliver())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def deliver(self) -> None:
        """Send every queued event (see the module's docstring)."""
        config = self.state.config
        batch, self.outbox = self.outbox, []
        if config.paygate_webhook_reorder:
            self.state.rng.shuffle(batch)
        url = config.paygate_webhook_url
        if url is None:
            return
        timeout = aiohttp.ClientTimeout(total=3.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for event in batch:
                copies = 2 if self.state.rng.random() < config.paygate_webhook_duplicates else 1
                for _ in range(copies):
                    await self._post(session, url, event)

    async def close(self) -> None:
        """Stop deliveries in progress."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _post(self, session: aiohttp.ClientSession, url: str, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        key = self.state.config.paygate_webhook_secret.encode()
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
        for attempt in range(self.state.config.paygate_webhook_attempts):
            self.state.count("paygate_webhooks.attempts")
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        self.delivered.append(event)
                        self.state.count("paygate_webhooks.delivered")
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            await asyncio.sleep(0.01 * 2**attempt)
        self.state.count("paygate_webhooks.given_up")
