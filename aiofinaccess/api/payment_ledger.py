"""The exactly-once rules for payment-creating requests, as data and pure functions (no I/O, no
clock); any provider's (finAPI's and Everifin's use them).

A payment-creating request is first written down (:class:`PaymentRecord`, ``PENDING``) under
its client reference, with a fingerprint of the whole request and what its provider's
reconciliation needs to find it again (``shape``, ``mark``). The outcome moves the record once:
``CREATED`` (the payment's document), ``NOT_CREATED`` (why), or ``UNKNOWN`` until a
reconciliation settles it.

A reconciliation lists the provider's payments and says what it found (:data:`Match`): the one
payment the request made, none, or several that may be it. None found means "not created" only
once the request can no longer land (:func:`settle`): the provider answered it (any status but
a gateway's 502 or 504), or ``settle_after`` seconds passed since it was written down.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar

import attrs
import cattrs

from ..core.errors import (
    ApiError,
    ConfigurationError,
    PaymentFieldError,
    ReauthorizationRequired,
    StoreError,
    TransportError,
    UsageError,
)

__all__ = [
    "REFERENCE_LIMIT",
    "Ambiguous",
    "Found",
    "Match",
    "NotFound",
    "PaymentRecord",
    "PaymentTimeouts",
    "RecordState",
    "check_reference",
    "fingerprint",
    "new_reference",
    "outcome_of_failure",
    "settle",
]

P = TypeVar("P")
PaymentId = int | str

#: A client reference's longest (finAPI's ``X-Request-Id``, Everifin's ``externalId``).
REFERENCE_LIMIT: Final = 255
_REFERENCE: Final = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII: it travels as a header
#: A gateway's answers: the provider itself may still be working on the request behind them.
_GATEWAY: Final = frozenset({502, 504})


class RecordState(enum.StrEnum):
    """Where a payment-creating request stands."""

    PENDING = "PENDING"  # written down; being sent (or its sender died)
    CREATED = "CREATED"
    NOT_CREATED = "NOT_CREATED"
    UNKNOWN = "UNKNOWN"  # sent, outcome not settled yet


@attrs.frozen(slots=True)
class PaymentRecord:
    """A payment-creating request as the store keeps it (see the module's docstring).

    Attributes:
        request: :func:`fingerprint` of the request: the same reference with another request
            is refused.
        sent_at: Wall-clock seconds when it was written down, just before the send.
        owner: Who sends it; ``claimed_until`` (wall clock) bounds how long others wait.
        shape: What the provider's reconciliation compares (its own JSON document).
        mark: The provider's high-water mark before the send (finAPI: the highest payment id).
        answered: The provider answered the send (with an error): it cannot land later.
        payment: The payment's JSON document, once created.
    """

    state: RecordState
    request: str
    sent_at: float
    owner: str
    claimed_until: float
    shape: dict[str, Any] = attrs.field(factory=dict)
    mark: int = 0
    answered: bool = False
    payment: dict[str, Any] | None = None
    reason: str | None = None

    @property
    def payment_id(self) -> PaymentId | None:
        if self.payment is None:
            return None
        found: PaymentId = self.payment["id"]
        return found

    def with_payment(self, document: dict[str, Any]) -> PaymentRecord:
        """This record, ``CREATED`` as the payment ``document``."""
        return attrs.evolve(self, state=RecordState.CREATED, payment=document, reason=None)

    def to_bytes(self) -> bytes:
        return json.dumps(_converter.unstructure(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> PaymentRecord:
        """Raises: StoreError: Not a record this SDK wrote."""
        try:
            return _converter.structure(json.loads(data), cls)
        except (ValueError, TypeError, KeyError, cattrs.BaseValidationError):
            raise StoreError("a payment record is unreadable") from None


_converter = cattrs.Converter()


def _seconds(_instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"PaymentTimeouts.{attribute.name} must be positive seconds")


@attrs.frozen(slots=True)
class PaymentTimeouts:
    """How long a payment client waits, and how long a reference stays open.

    Args:
        request: Seconds per request.
        claim_for: Seconds another caller of the same reference waits for the sender before
            reconciling in its place (longer than ``request``).
        settle_after: Seconds after a send from which a payment not found can no longer
            appear (``PaymentNotCreated`` rather than ``PaymentOutcomeUnknown``; longer than
            ``claim_for``).

    Raises:
        ConfigurationError: A value that is not positive seconds, or not
            ``request < claim_for < settle_after``.
    """

    request: float = attrs.field(default=30.0, validator=_seconds)
    claim_for: float = attrs.field(default=120.0, validator=_seconds)
    settle_after: float = attrs.field(default=600.0, validator=_seconds)

    def __attrs_post_init__(self) -> None:
        if not self.request < self.claim_for < self.settle_after:
            raise ConfigurationError("PaymentTimeouts need request < claim_for < settle_after")


def new_reference() -> str:
    """A fresh client reference: 32 hex digits, so it also fits an end-to-end id (35)."""
    return uuid.uuid4().hex


def check_reference(reference: str) -> str:
    """``reference`` if it can be a payment's client reference.

    Raises:
        PaymentFieldError: Empty, over 255 characters, or not visible ASCII.
    """
    if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
        raise PaymentFieldError("reference", "must be 1 to 255 visible ASCII characters")
    return reference


def fingerprint(kind: str, body: Any) -> str:
    """A request's identity: its kind and JSON body, canonically hashed."""
    canonical = json.dumps([kind, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@attrs.frozen(slots=True)
class Found(Generic[P]):
    """The one payment this request made."""

    payment: P


@attrs.frozen(slots=True)
class NotFound:
    """No listed payment can be this request's."""


@attrs.frozen(slots=True)
class Ambiguous:
    """Payments that may be this request's, but not surely (several, or contested)."""

    candidates: tuple[PaymentId, ...]


Match = Found[P] | NotFound | Ambiguous


def outcome_of_failure(error: BaseException) -> tuple[RecordState, bool]:
    """What a failed send means: ``(NOT_CREATED or UNKNOWN, answered by the provider?)``.

    Not created: the request surely never left (a refused connection, a usage error, a dead
    grant), or the provider answered it with a 4xx. Every other failure (a timeout, a reset
    after sending, a 5xx, an unreadable 2xx, anything unforeseen) may have made the payment.
    """
    if isinstance(error, TransportError):
        return (RecordState.UNKNOWN if error.request_sent else RecordState.NOT_CREATED), False
    if isinstance(error, ApiError):
        if error.status < 500:
            return RecordState.NOT_CREATED, True
        return RecordState.UNKNOWN, error.status not in _GATEWAY
    if isinstance(error, UsageError | ReauthorizationRequired):
        return RecordState.NOT_CREATED, False
    return RecordState.UNKNOWN, False


def settle(
    record: PaymentRecord,
    match: Match[P],
    *,
    now: float,
    settle_after: float,
    document: Callable[[P], dict[str, Any]],
) -> PaymentRecord:
    """The record after a reconciliation that found ``match`` at ``now`` (wall clock);
    ``document`` writes a found payment as JSON."""
    if isinstance(match, Found):
        return record.with_payment(document(match.payment))
    if isinstance(match, NotFound) and (record.answered or now >= record.sent_at + settle_after):
        return attrs.evolve(record, state=RecordState.NOT_CREATED, reason="not found")
    reason = "ambiguous" if isinstance(match, Ambiguous) else "not found yet, may still land"
    return attrs.evolve(record, state=RecordState.UNKNOWN, reason=reason)


def readable(records: Mapping[str, bytes]) -> dict[str, PaymentRecord]:
    """The records among ``records`` this SDK can read (others are skipped)."""
    found = {}
    for name, data in records.items():
        try:
            found[name] = PaymentRecord.from_bytes(data)
        except StoreError:
            continue
    return found
