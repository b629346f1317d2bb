"""Paygate's webhook events, read and judged without I/O: typed, checked, deduplicated.

Everifin POSTs ``{eventId, eventType, eventTimestamp, data: {paymentId | orderId | refundId,
instructionId?, externalId?, status, hookData?}}`` and retries until it gets a 2xx, so one
event may come several times, and events of one payment may come out of order. Everifin's
advice (``everifin_keycloak.md`` A6): deduplicate by ``eventId`` and ignore an event older than
the last one seen. :class:`EventLog` does both, per payment (order, refund): :meth:`EventLog.begin`
says whether to apply an event; one it said to apply is either :meth:`~EventLog.done` or,
should applying fail, :meth:`~EventLog.failed` (forgotten, so Everifin's retry applies it).

The signature scheme ("Webhooks Security") is not public: :func:`check_signature` takes the hex
HMAC-SHA256 of the body in a configurable header (UNCERTAIN), ``sha256=`` prefix allowed.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ...core.errors import ConfigurationError, UnexpectedResponseError, WebhookRejected
from ...core.tokens import Secret
from ..json_ready import JsonReady
from ..models import read_model

__all__ = [
    "SIGNATURE_HEADER",
    "EventLog",
    "PaygateEvent",
    "Verdict",
    "check_signature",
    "read_event",
    "secret_bytes",
]

#: Where the signature is looked for by default (UNCERTAIN: Everifin does not publish it).
SIGNATURE_HEADER: Final = "X-Everifin-Signature"
MAX_BODY: Final = 64 * 1024
#: Characters an id in an event may have (Everifin's are short; the logs keep them).
ID_LIMIT: Final = 255


@attrs.frozen(slots=True)
class _Data:
    payment_id: str | None = None
    order_id: str | None = None
    refund_id: str | None = None
    instruction_id: str | None = None
    external_id: str | None = None
    status: str | None = None
    hook_data: Any = None


@attrs.frozen(slots=True)
class _Wire:
    event_id: str
    event_type: str
    event_timestamp: dt.datetime
    data: _Data


@attrs.frozen(slots=True)
class PaygateEvent(JsonReady):
    """One webhook event.

    Attributes:
        event_type: ``payment.statusChange``, ``order.statusChange`` or ``payment.statusCheck``.
        subject: What it is about (``payment:{id}``, ``order:{id}``, ``refund:{id}``).
        external_id: The client reference of the payment.
        hook_data: What the merchant gave when creating it.
    """

    event_id: str
    event_type: str
    event_timestamp: dt.datetime
    subject: str
    status: str | None = None
    payment_id: str | None = None
    order_id: str | None = None
    external_id: str | None = None
    instruction_id: str | None = None
    hook_data: Any = None


def read_event(body: bytes, *, max_body: int = MAX_BODY) -> PaygateEvent:
    """The event in a webhook request's body.

    Raises:
        WebhookRejected: Over ``max_body`` bytes (413), or not an event (400): one
            without its ids, or with an id over :data:`ID_LIMIT` characters.
    """
    if len(body) > max_body:
        raise WebhookRejected(413, f"body over {max_body} bytes")
    try:
        wire = read_model(body, _Wire, what="webhook")
    except UnexpectedResponseError:
        raise WebhookRejected(400, "not a Paygate event") from None
    data = wire.data
    ids = (("payment", data.payment_id), ("refund", data.refund_id), ("order", data.order_id))
    subject = next((f"{kind}:{value}" for kind, value in ids if value), None)
    if subject is None or not wire.event_id:
        raise WebhookRejected(400, "an event names its id and a payment, order or refund")
    named = (wire.event_id, data.payment_id, data.order_id, data.refund_id, data.external_id)
    if any(len(value) > ID_LIMIT for value in named if isinstance(value, str)):
        raise WebhookRejected(400, f"an event's ids have at most {ID_LIMIT} characters")
    return PaygateEvent(
        wire.event_id,
        wire.event_type,
        wire.event_timestamp,
        subject,
        status=data.status,
        payment_id=data.payment_id,
        order_id=data.order_id,
        external_id=data.external_id,
        instruction_id=data.instruction_id,
        hook_data=data.hook_data,
    )


def check_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: Secret | str | bytes,
    *,
    header: str = SIGNATURE_HEADER,
) -> None:
    """Refuse a body whose signature is missing or wrong.

    Raises:
        WebhookRejected: 401.
    """
    expected = hmac.new(secret_bytes(secret), body, hashlib.sha256).hexdigest()
    given = next((v for k, v in headers.items() if k.lower() == header.lower()), "").strip()
    if given[:7].lower() == "sha256=":
        given = given[7:]
    # A header a server decoded with surrogates or from Latin-1 is no hex digest: the
    # comparison is of ASCII bytes, time-safe, and never raises.
    given_bytes = given.lower().encode("ascii", "replace")
    if not hmac.compare_digest(given_bytes, expected.encode()):
        raise WebhookRejected(401, "signature missing or wrong")


def secret_bytes(secret: Secret | str | bytes) -> bytes:
    """The webhook secret's bytes.

    Raises:
        ConfigurationError: It is empty or blank (an unset variable read with a default):
            anyone could sign with it.
    """
    key = secret.reveal() if isinstance(secret, Secret) else secret
    key_bytes = key.encode() if isinstance(key, str) else bytes(key)
    if not key_bytes.strip():
        raise ConfigurationError(
            "the Paygate webhook secret is empty: set it, or pass secret=None to receive "
            "unsigned webhooks"
        )
    return key_bytes


class Verdict(enum.StrEnum):
    """What to do with an event."""

    APPLY = "applied"
    DUPLICATE = "duplicate"  # this eventId was applied or is being applied
    STALE = "stale"  # older than the last event applied to its subject
    BUSY = "busy"  # another event of its subject is being applied elsewhere: retry later


class EventLog:
    """Which events were applied (by ``eventId``) and each subject's newest event time.

    Args:
        keep: How many event ids and subjects to remember (the oldest are forgotten first;
            Everifin's retries come within hours, not after thousands of newer events).
    """

    def __init__(self, keep: int = 100_000) -> None:
        self._keep = keep
        self._seen: OrderedDict[str, bool] = OrderedDict()  # id -> applied (False: applying)
        self._newest: OrderedDict[str, dt.datetime] = OrderedDict()
        #: Verdicts given, by their value.
        self.counts: dict[str, int] = {
            verdict.value: 0 for verdict in (Verdict.APPLY, Verdict.DUPLICATE, Verdict.STALE)
        }

    def begin(self, event: PaygateEvent) -> Verdict:
        """Whether to apply ``event``; :data:`Verdict.APPLY` holds its id until
        :meth:`done` or :meth:`failed`."""
        verdict = Verdict.APPLY
        newest = self._newest.get(event.subject)
        if event.event_id in self._seen:
            verdict = Verdict.DUPLICATE
        elif newest is not None and event.event_timestamp < newest:
            verdict = Verdict.STALE
        else:
            self._seen[event.event_id] = False
            self._trim(self._seen)
        self.counts[verdict.value] += 1
        return verdict

    def done(self, event: PaygateEvent) -> None:
        """``event`` was applied: its subject's newest time moves to it."""
        self._seen[event.event_id] = True
        newest = self._newest.get(event.subject)
        if newest is None or event.event_timestamp > newest:
            self._newest[event.subject] = event.event_timestamp
        self._newest.move_to_end(event.subject)
        self._trim(self._newest)

    def failed(self, event: PaygateEvent) -> None:
        """Applying ``event`` failed: forget it, so its redelivery is applied."""
        self._seen.pop(event.event_id, None)
        self.counts[Verdict.APPLY.value] -= 1

    def _trim(self, table: OrderedDict[str, Any]) -> None:
        while len(table) > self._keep:
            table.popitem(last=False)
