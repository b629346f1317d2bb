"""Connection events to the app's URL: signed, retried, deduplicable; and the receiver's check.

:class:`WebhookSender` is a callback for ``manager.connections.subscribe``: it POSTs each event
as JSON to one URL and returns once the receiver answered 2xx. Every request carries

* ``Aiofinaccess-Event-Id``: the event's id, the same on every delivery of it (deduplicate);
* ``Aiofinaccess-Timestamp``: when this request was signed (UNIX seconds, an integer);
* ``Aiofinaccess-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed by the shared secret, of
  the timestamp, a ``.``, and the body's bytes.

A 5xx, 408, 429 or a network failure is retried with full-jitter backoff (``Retry-After``
honoured up to the cap); when the tries run out the sender raises, which leaves the event to the
registry's redelivery. Another 4xx means the receiver refused it: logged, not retried. Receivers
check a request with :func:`verify_webhook` (any framework: it takes the headers and the body).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Callable, Mapping
from typing import Final

import aiohttp
import attrs
from yarl import URL

from ..core._json import parse_json
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import ConfigurationError, TransportError, ValidationError
from ..core.retry import Backoff
from ..core.tokens import Secret
from ..session.connection_events import ConnectionEvent

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSender",
    "sign_webhook",
    "verify_webhook",
    "webhook_body",
]

logger = logging.getLogger("aiofinaccess")

EVENT_ID_HEADER: Final = "Aiofinaccess-Event-Id"
TIMESTAMP_HEADER: Final = "Aiofinaccess-Timestamp"
SIGNATURE_HEADER: Final = "Aiofinaccess-Signature"
_RETRYABLE: Final = frozenset({408, 429})


def _key(secret: Secret | str | bytes) -> bytes:
    if isinstance(secret, Secret):
        secret = secret.reveal()
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < 16:
        raise ConfigurationError("a webhook secret needs at least 16 bytes")
    return key


def sign_webhook(secret: Secret | str | bytes, timestamp: int, body: bytes) -> str:
    """The ``Aiofinaccess-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def verify_webhook(
    secret: Secret | str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = 300.0,
) -> str:
    """Check a received webhook; return its event id (deduplicate by it).

    Args:
        secret: The secret shared with the sender.
        headers: The request's headers (any case-insensitive or plain mapping).
        body: The request's body, exactly as received.
        now: The receiver's clock (UNIX seconds).
        tolerance: How far the signed timestamp may be from ``now`` (replays are refused
            outside it).

    Raises:
        ValidationError: A header is missing, the timestamp is outside ``tolerance``, or the
            signature does not match.
    """
    found = {name.lower(): value for name, value in headers.items()}
    try:
        event_id = found[EVENT_ID_HEADER.lower()]
        stamp = found[TIMESTAMP_HEADER.lower()]
        signature = found[SIGNATURE_HEADER.lower()]
    except KeyError:
        raise ValidationError("webhook: a signature header is missing") from None
    # Only what the sender writes: int() would also take "1_000", spaces and other digits.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise ValidationError("webhook: the timestamp header is malformed")
    timestamp = int(stamp)
    if not abs(now - timestamp) <= tolerance:
        raise ValidationError("webhook: the timestamp is outside the tolerance (a replay?)")
    expected = sign_webhook(secret, timestamp, body).encode()
    # Bytes: compare_digest raises TypeError for a str with non-ASCII characters.
    given = [part.strip().encode("utf-8", "surrogateescape") for part in signature.split(",")]
    if not any(hmac.compare_digest(expected, part) for part in given):
        raise ValidationError("webhook: the signature does not match")
    try:
        document = parse_json(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("id") != event_id:
        raise ValidationError("webhook: the event id header does not match the body")
    return event_id


def webhook_body(event: ConnectionEvent) -> bytes:
    """The JSON body for ``event``: ``id``, ``type`` and the event's fields (instants as ISO
    8601 UTC, durations in seconds)."""
    fields: dict[str, object] = {"id": event.event_id, "type": type(event).__name__}
    for name, value in attrs.asdict(event, recurse=False).items():
        if name != "event_id":
            fields[name] = _json_ready(value)
    return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()


class WebhookSender:
    """POST each connection event to ``url``, signed, retried (see the module docstring).

    Lives as long as ``session``; subscribe it: ``manager.connections.subscribe(sender)``.

    Args:
        url: The app's receiving URL (http or https; its repr shows the origin only).
        secret: The shared secret (16 bytes or more; keep it in the app's settings).
        session: The aiohttp session to send with (``manager.http_session`` will do).
        attempts: Tries per event before giving the event back to the registry.
        backoff: Waits between tries.
        timeout: Seconds one try may take.
        clock: Where timestamps and waits come from.
        random: The jitter's uniform draw.
    """

    def __init__(
        self,
        url: str,
        secret: Secret | str | bytes,
        *,
        session: aiohttp.ClientSession,
        attempts: int = 5,
        backoff: Backoff = Backoff(initial=0.5, cap=30.0, max_retry_after=60.0),  # noqa: B008
        timeout: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        random: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ConfigurationError("attempts must be at least 1")
        target = URL(url) if isinstance(url, str) else None
        if target is None or target.scheme not in ("http", "https") or not target.host:
            raise ConfigurationError("url must be an absolute http(s) URL with a host")
        self._origin = str(target.origin())  # the repr's: the path or query may be a secret
        self._url, self._secret = url, Secret(_key(secret).decode("latin-1"))
        self._session, self._attempts, self._backoff = session, attempts, backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock, self._random = clock, random

    def __repr__(self) -> str:
        return f"WebhookSender(origin={self._origin!r}, attempts={self._attempts})"

    async def __call__(self, event: ConnectionEvent) -> None:
        """Deliver ``event``.

        Raises:
            TransportError: Every try failed with a retryable answer or a network error.
        """
        body = webhook_body(event)
        secret = self._secret.reveal().encode("latin-1")
        for attempt in range(1, self._attempts + 1):
            stamp = int(self._clock.wall())
            headers = {
                "Content-Type": "application/json",
                EVENT_ID_HEADER: event.event_id,
                TIMESTAMP_HEADER: str(stamp),
                SIGNATURE_HEADER: sign_webhook(secret, stamp, body),
            }
            retry_after, status = None, 0  # 0: no answer
            try:
                async with self._session.post(
                    self._url, data=body, headers=headers, timeout=self._timeout
                ) as response:
                    status = response.status
                    retry_after = _seconds(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = type(exc).__name__
            else:
                why = f"HTTP {status}"
                if 200 <= status < 300:
                    return
                if status < 500 and status not in _RETRYABLE:
                    logger.error("webhook refused %s (%s): not retried", type(event).__name__, why)
                    return
            if attempt < self._attempts:
                await self._clock.sleep(self._backoff.wait(attempt, self._random, retry_after))
        # It may have arrived all the same: the receiver deduplicates by the event id.
        raise TransportError(f"webhook delivery failed ({why})", request_sent=True)


def _json_ready(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value) if isinstance(value, enum.Enum) else value


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
