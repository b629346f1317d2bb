"""The one error hierarchy of aiofinaccess.

    AiofinaccessError
    ├── UsageError                    you called the SDK in a way it cannot serve
    │   ├── ConfigurationError        a setting is missing or wrong; the message names it
    │   ├── ClientMismatchError       the token set was issued to another client than ours
    │   ├── ValidationError           an argument breaks the provider's rules; not sent
    │   │   ├── PaymentFieldError     a payment's field breaks a rule (``field``)
    │   │   │   ├── InvalidAmountError  not a positive amount in the currency's minor units
    │   │   │   └── InvalidIbanError    wrong length for its country or mod 97 check
    │   │   └── WebhookRejected       a received webhook is unreadable, badly signed or too large
    │   ├── InvalidTransition         a token set's status cannot take that event (a bug)
    │   └── UpdateBudgetExhausted     no unattended update left for now (``next_allowed_at``)
    ├── AuthorizationFlowError        a redirect or a provider's callback cannot be accepted
    │   ├── StateMismatchError        ``state`` missing or not ours (treat as an attack)
    │   ├── AuthorizationDenied       the provider redirected with ``error=...``
    │   ├── ExchangeFailed            the callback was genuine; exchanging its code failed
    │   └── CallbackRejected          a finAPI callback cannot be taken (``status``: 400)
    │       ├── MalformedCallback     not the callback's shape (400)
    │       ├── CallbackTooLarge      a body over the limit (413)
    │       └── CallbackUnavailable   not confirmable for now: send it again (503)
    ├── TransportError                the network failed; ``retryable``, ``request_sent``
    ├── UnexpectedResponseError       a 2xx answer the SDK cannot read
    │   └── TokenResponseError        ... from a token endpoint
    ├── ApiError                      the provider answered with an HTTP error
    │   ├── OAuthError                a token endpoint refused, in OAuth's shape
    │   │   └── InvalidClientError    the client id or secret is wrong
    │   ├── BadRequestError           400 from an API
    │   ├── AuthenticationError       401 from an API, after one renewal and retry
    │   ├── ForbiddenError            403 (wrong token kind, not allowed)
    │   ├── NotFoundError             404
    │   ├── ConflictError             409 (Everifin: the account is not active)
    │   ├── UnprocessableEntityError  422 (business rule)
    │   │   └── EntityExistsError     422 ENTITY_EXISTS (finAPI: the user id is taken)
    │   ├── LockedError               423
    │   ├── RateLimitedError          429 (``retry_after``)
    │   └── ServerError               5xx
    ├── PaymentError                  a payment's outcome under its ``reference``
    │   ├── PaymentNotCreated         no payment was made under the reference, nor will be
    │   └── PaymentOutcomeUnknown     not settled yet (``candidates``): ask again later
    ├── ReauthorizationRequired       the grant is dead: the end user must authorize again
    └── StoreError                    the token store failed
        ├── StoreConflictError        a compare-and-swap lost to another writer
        └── LeaseBusyError            a store lease stayed taken longer than the wait
            └── PausedBeforeSendError the lease lapsed before every send (a pausing process)

``InvalidTransition`` is defined in :mod:`aiofinaccess.core.lifecycle` and ``ExchangeFailed``
in :mod:`aiofinaccess.integrations.web`; :mod:`aiofinaccess.errors` exports every one, and
``aiofinaccess`` the root and the first level. No exception message contains a token, secret
or password; bodies are kept parsed (``ApiError.body``, in the shapes of
:mod:`aiofinaccess.core.error_bodies`), so callers read fields, not strings;
``ReauthorizationRequired`` is decided by the OAuth error *code* (``invalid_grant``), never by
the description text. The parsers of error bodies live in :mod:`aiofinaccess.oauth.error_bodies`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .error_bodies import ErrorBody, OAuthErrorBody

__all__ = [
    "AiofinaccessError",
    "ApiError",
    "AuthenticationError",
    "AuthorizationDenied",
    "AuthorizationFlowError",
    "BadRequestError",
    "CallbackRejected",
    "CallbackTooLarge",
    "CallbackUnavailable",
    "ClientMismatchError",
    "ConfigurationError",
    "ConflictError",
    "EntityExistsError",
    "ForbiddenError",
    "InvalidAmountError",
    "InvalidClientError",
    "InvalidIbanError",
    "LeaseBusyError",
    "LockedError",
    "MalformedCallback",
    "NotFoundError",
    "OAuthError",
    "PausedBeforeSendError",
    "PaymentError",
    "PaymentFieldError",
    "PaymentNotCreated",
    "PaymentOutcomeUnknown",
    "RateLimitedError",
    "ReauthorizationRequired",
    "ServerError",
    "StateMismatchError",
    "StoreConflictError",
    "StoreError",
    "TokenResponseError",
    "TransportError",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "UpdateBudgetExhausted",
    "UsageError",
    "ValidationError",
    "WebhookRejected",
]


class AiofinaccessError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(AiofinaccessError):
    """The SDK was called in a way it cannot serve."""


class ConfigurationError(UsageError, ValueError):
    """A setting is missing or wrong. Raised at construction; the message names the setting."""


class ClientMismatchError(UsageError):
    """The stored token set was issued to another OAuth client than the one registered here
    for its provider (another app sharing the store under the same provider name): it is not
    used, renewed, revoked or logged out with this client's credentials, which the provider
    would refuse (Keycloak: ``invalid_grant``, ending the user's session).

    Attributes:
        key: The token set's key, as a hash.
        provider, subject: The provider's name and the app's user id (never in the message).
        issued_to: The client id the set was issued to (client ids are not secret).
        client_id: This process's client id for the provider.
    """

    def __init__(
        self, key_hash: str, *, provider: str, subject: str | None, issued_to: str, client_id: str
    ) -> None:
        self.key = key_hash
        self.provider = provider
        self.subject = subject
        self.issued_to = issued_to
        self.client_id = client_id
        super().__init__(
            f"token set {key_hash} was issued to client {issued_to!r}, not to {client_id!r} "
            f"registered here for {provider!r}: not used or renewed here"
        )


class ValidationError(UsageError, ValueError):
    """An argument breaks a documented provider limit; nothing was sent. Names the field."""


class PaymentFieldError(ValidationError):
    """A payment's field breaks a rule (a length, a shape); nothing was sent.

    Attributes:
        field: The field's name as the SDK spells it (``purpose``, ``counterpart_name``...).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class InvalidAmountError(PaymentFieldError):
    """Not an amount a payment can carry: a float, not finite, more decimals than the
    currency's minor units, or not positive where a payment needs it."""


class InvalidIbanError(PaymentFieldError):
    """Not an IBAN: wrong characters, wrong length for its country, or a failed mod 97 check."""


class WebhookRejected(ValidationError):
    """A webhook request the receiver refuses.

    Attributes:
        status: The HTTP answer it deserves (400 unreadable, 401 unsigned or badly signed,
            413 too large).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AuthorizationFlowError(AiofinaccessError):
    """An authorization redirect (the callback URL) or a provider's callback cannot be accepted."""


class StateMismatchError(AuthorizationFlowError):
    """The callback's ``state`` is missing or is not the one we issued."""


class AuthorizationDenied(AuthorizationFlowError):
    """The provider redirected back with an error, for example ``access_denied``.

    Attributes:
        error: The OAuth error code from the redirect.
        error_description: The provider's human-readable text, if any.
    """

    def __init__(self, error: str, error_description: str | None = None) -> None:
        self.error = error
        self.error_description = error_description
        text = f"authorization failed: {error}"
        if error_description:
            text += f" ({error_description})"
        super().__init__(text)


class TransportError(AiofinaccessError):
    """The request could not be completed at the network level.

    Attributes:
        request_sent: ``False`` only when the request surely never reached the server
            (for example a refused connection). ``True`` means it may have been processed,
            so a rotating refresh token may already be spent.
        retryable: Whether trying again may succeed.
    """

    def __init__(self, message: str, *, request_sent: bool, retryable: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        self.retryable = retryable


class UnexpectedResponseError(AiofinaccessError):
    """The provider answered 2xx with a body the SDK cannot read (wrong shape, not JSON)."""


class TokenResponseError(UnexpectedResponseError):
    """The token endpoint answered 2xx with a body that is not a usable token response."""


class StoreError(AiofinaccessError):
    """The token store failed to read or write. The new token set was not published."""


class StoreConflictError(StoreError):
    """A compare-and-swap found a different version than expected: someone else wrote first."""


class LeaseBusyError(StoreError):
    """Another holder kept a store lease longer than this caller waited for it."""


class PausedBeforeSendError(LeaseBusyError):
    """A renewal's lease lapsed between its fence and the send, several times in a row: this
    process pauses longer than the lease's margin before each send. Nothing was sent; the
    stored set is left for the next renewal (retryable, like a busy lease)."""


class ApiError(AiofinaccessError):
    """The provider answered with an HTTP error status.

    Attributes:
        status: The HTTP status.
        request_id: The ``X-Request-Id`` of the exchange (ours or the provider's), for support.
        body: The parsed body (:data:`~aiofinaccess.core.error_bodies.ErrorBody`).
        retry_after: Seconds the provider asked us to wait (``Retry-After``), if any.
        code: The provider's error code (``ENTITY_EXISTS``, ``invalid_grant``...), if any.
    """

    def __init__(
        self,
        status: int,
        body: ErrorBody,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
        context: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.request_id = request_id
        self.retry_after = retry_after
        self.code = body.code
        parts = [f"HTTP {status}"]
        if context:
            parts.insert(0, context + ":")
        if body.code:
            parts.append(body.code)
        text = " ".join(parts)
        if body.message:
            text += f": {body.message}"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text)

    @property
    def retryable(self) -> bool:
        """True for statuses that may succeed later: 408, 425, 429 and 5xx."""
        return self.status in (408, 425, 429) or self.status >= 500


class OAuthError(ApiError):
    """A token, revocation or logout endpoint refused the request in OAuth's error shape.

    Attributes:
        error: The OAuth error code (``invalid_grant``, ``invalid_request``...).
        error_description: The provider's text. Informational only: never branch on it.
    """

    body: OAuthErrorBody

    def __init__(
        self,
        status: int,
        body: OAuthErrorBody,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
        context: str | None = None,
    ) -> None:
        super().__init__(
            status, body, request_id=request_id, retry_after=retry_after, context=context
        )
        self.error = body.error
        self.error_description = body.error_description


class InvalidClientError(OAuthError):
    """The client id or secret was refused (``invalid_client``/``unauthorized_client``, or 401)."""


class BadRequestError(ApiError):
    """400: the API refused the request as malformed."""


class AuthenticationError(ApiError):
    """401: the API refused the bearer token even after one renewal."""


class ForbiddenError(ApiError):
    """403: the token is of the wrong kind or the caller may not do this."""


class NotFoundError(ApiError):
    """404: no such entity."""


class ConflictError(ApiError):
    """409: the entity is not in a state that allows this."""


class UnprocessableEntityError(ApiError):
    """422: a business rule refused the request (the body's code says which)."""


class EntityExistsError(UnprocessableEntityError):
    """422 ``ENTITY_EXISTS``: finAPI already has an entity with this id (a taken user id)."""


class LockedError(ApiError):
    """423: the entity is locked (a finAPI user after too many failed logins; a busy import)."""


class RateLimitedError(ApiError):
    """429: too many requests; ``retry_after`` says how long to wait, when the API says."""


class ServerError(ApiError):
    """5xx: the provider failed; retrying later may succeed."""


class CallbackRejected(AuthorizationFlowError):
    """A finAPI callback that cannot be taken; ``status`` is the HTTP answer to give."""

    status = 400


class MalformedCallback(CallbackRejected):
    """Not the callback's shape (400)."""


class CallbackTooLarge(CallbackRejected):
    """A callback body over the limit (413)."""

    status = 413


class CallbackUnavailable(CallbackRejected):
    """A callback could not be confirmed for now (finAPI or the store failed): send it
    again (503)."""

    status = 503


class PaymentError(AiofinaccessError):
    """What became of a payment-creating request, told by its client reference.

    Attributes:
        reference: The client reference the request carried (``X-Request-Id``).
    """

    def __init__(self, reference: str, message: str) -> None:
        super().__init__(f"payment {reference}: {message}")
        self.reference = reference


class PaymentNotCreated(PaymentError):
    """No payment exists under the reference, and none will: the provider refused the request,
    it was never sent, or reconciliation found none after the request could no longer land.
    Sending the payment again needs a new reference.

    Attributes:
        reason: Why, in a few words (``"refused: HTTP 422 ..."``, ``"not found"``...).
    """

    def __init__(self, reference: str, reason: str) -> None:
        super().__init__(reference, f"not created ({reason})")
        self.reason = reason


class PaymentOutcomeUnknown(PaymentError):
    """The request may have made a payment and reconciliation could not settle it yet: the
    request may still be in flight, the listing failed, or several payments match. Never send
    it again under a new reference; ask again later (``resolve`` on the payments client).

    Attributes:
        candidates: Ids of the listed payments that could be this one (several: ambiguous).
    """

    def __init__(self, reference: str, reason: str, candidates: tuple[int | str, ...] = ()) -> None:
        super().__init__(reference, f"outcome unknown ({reason})")
        self.reason = reason
        self.candidates = candidates


class ReauthorizationRequired(AiofinaccessError):
    """The token set can no longer be renewed: the end user must authorize again.

    Raised for every ``invalid_grant`` (and ``invalid_scope`` on refresh), when no token set is
    stored for the key, and on every later request for a token set already in this state,
    without calling the provider again, until the app stores a new token set.

    Attributes:
        key: The token set's key, as a hash (user ids are personal data).
        reason: ``"invalid_grant"``, ``"no_token_set"``, ``"refresh_token_expired"``...
        cause: The provider's refusal (usually an :class:`OAuthError`), if one caused it.
        provider: The provider's name, when the manager raised it.
        subject: The app's user id (``None`` for the client's own token, or when unknown), so
            the app can ask that user to connect again.

    ``str()`` is for the app, which knows its users: it names the provider and the user and
    says what to do. ``repr()`` names the token set by its hash only: the SDK's logs print that.
    """

    def __init__(
        self,
        key_hash: str | None,
        reason: str,
        cause: ApiError | None = None,
        *,
        provider: str | None = None,
        subject: str | None = None,
    ) -> None:
        self.key = key_hash
        self.reason = reason
        self.cause = cause
        self.provider = provider
        self.subject = subject
        subject = f"token set {key_hash}" if key_hash else "token set"
        text = f"re-authorization required for {subject}: {reason}"
        if cause is not None and cause.body.message:
            text += f" ({cause.body.message})"
        super().__init__(text)

    def __str__(self) -> str:
        if self.provider is None:
            return super().__str__()
        if self.subject is None:
            return (
                f"the {self.provider} client token cannot be renewed ({self.reason}): check the "
                "client's credentials and its access at the provider"
            )
        text = (
            f"{self.provider} user {self.subject!r} must authorize again ({self.reason}): send "
            "the user through the connect (authorization) flow"
        )
        if self.cause is not None and self.cause.body.message:
            text += f"; the provider said: {self.cause.body.message}"
        return text


class UpdateBudgetExhausted(UsageError):
    """The connection had its unattended updates for the window (PSD2: four per 24 hours);
    nothing was sent. Try again at ``next_allowed_at``, or update with the user present.

    Attributes:
        provider, connection: The connection (``subject``, the app's user id, is kept out of
            the message).
        next_allowed_at: When the next unattended update is allowed (aware, UTC).
    """

    def __init__(
        self, provider: str, subject: str, connection: str, next_allowed_at: dt.datetime
    ) -> None:
        super().__init__(
            f"{provider} connection {connection!r} had every unattended update of its window: "
            f"the next is allowed at {next_allowed_at.isoformat()}"
        )
        self.provider = provider
        self.subject = subject
        self.connection = connection
        self.next_allowed_at = next_allowed_at
