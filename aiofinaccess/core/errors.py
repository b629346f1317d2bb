"""The one error hierarchy of aiofinaccess, and parsers for the providers' error bodies.

::

    AiofinaccessError
    ├── UsageError                    you called the SDK in a way it cannot serve
    │   └── ConfigurationError        a setting is missing or wrong; the message names it
    ├── AuthorizationFlowError        an authorization redirect cannot be accepted
    │   ├── StateMismatchError        ``state`` missing or not ours (treat as an attack)
    │   └── AuthorizationDenied       the provider redirected with ``error=...``
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
    ├── ReauthorizationRequired       the grant is dead: the end user must authorize again
    └── StoreError                    the token store failed
        └── StoreConflictError        a compare-and-swap lost to another writer

Rules: no exception message ever contains a token, secret or password; bodies are kept
parsed (``ApiError.body``) so callers read fields, not strings; ``ReauthorizationRequired``
is decided by the OAuth error *code* (``invalid_grant``), never by the description text.

This module imports nothing else of aiofinaccess.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

import attrs

from ._json import parse_json

__all__ = [
    "AiofinaccessError",
    "ApiError",
    "AuthenticationError",
    "AuthorizationDenied",
    "AuthorizationFlowError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "EntityExistsError",
    "ErrorBody",
    "EverifinErrorBody",
    "EverifinErrorDetail",
    "FinApiErrorBody",
    "FinApiErrorDetail",
    "ForbiddenError",
    "InvalidClientError",
    "LeaseBusyError",
    "LockedError",
    "NotFoundError",
    "OAuthError",
    "OAuthErrorBody",
    "RateLimitedError",
    "ReauthorizationRequired",
    "ServerError",
    "StateMismatchError",
    "StoreConflictError",
    "StoreError",
    "TokenResponseError",
    "TransportError",
    "UnexpectedResponseError",
    "UnparsedErrorBody",
    "UnprocessableEntityError",
    "UsageError",
    "ValidationError",
    "WebFormErrorBody",
    "error_from_response",
    "parse_error_body",
    "parse_retry_after",
]


class AiofinaccessError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(AiofinaccessError):
    """The SDK was called in a way it cannot serve."""


class ConfigurationError(UsageError, ValueError):
    """A setting is missing or wrong. Raised at construction; the message names the setting."""


class ValidationError(UsageError, ValueError):
    """An argument breaks a documented provider limit; nothing was sent. Names the field."""


class AuthorizationFlowError(AiofinaccessError):
    """An authorization redirect (the callback URL) cannot be accepted."""


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


# ---------------------------------------------------------------------------------------------
# Error bodies: the three shapes providers use, plus "could not parse"


@attrs.frozen(slots=True)
class FinApiErrorDetail:
    """One entry of finAPI's ``errors`` list. ``code`` is an open set: unknown codes are kept."""

    code: str
    message: str | None = None
    type: str | None = None
    multi_step_authentication: Mapping[str, Any] | None = None


@attrs.frozen(slots=True)
class FinApiErrorBody:
    """finAPI's ``{errors: [...], date, requestId, endpoint, authContext, bank}``."""

    errors: tuple[FinApiErrorDetail, ...]
    request_id: str | None = None
    date: str | None = None
    endpoint: str | None = None
    auth_context: str | None = None
    bank: str | None = None

    @property
    def code(self) -> str | None:
        """The first error's code, e.g. ``ENTITY_EXISTS``."""
        return self.errors[0].code if self.errors else None

    @property
    def message(self) -> str | None:
        """The first error's message."""
        return self.errors[0].message if self.errors else None


@attrs.frozen(slots=True)
class OAuthErrorBody:
    """RFC 6749's ``{error, error_description, error_uri}`` (Keycloak and finAPI auth errors)."""

    error: str
    error_description: str | None = None
    error_uri: str | None = None

    @property
    def code(self) -> str:
        """The OAuth error code, e.g. ``invalid_grant``."""
        return self.error

    @property
    def message(self) -> str | None:
        """The description."""
        return self.error_description


@attrs.frozen(slots=True)
class EverifinErrorDetail:
    """One entry of Everifin's ``errors`` list."""

    code: str
    title: str | None = None
    detail: str | None = None


@attrs.frozen(slots=True)
class EverifinErrorBody:
    """Everifin's ``{errors: [{code, title, detail}], meta: {...}}``."""

    errors: tuple[EverifinErrorDetail, ...]
    meta: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def code(self) -> str | None:
        """The first error's code."""
        return self.errors[0].code if self.errors else None

    @property
    def message(self) -> str | None:
        """The first error's title and detail."""
        if not self.errors:
            return None
        first = self.errors[0]
        return ": ".join(part for part in (first.title, first.detail) if part) or None


@attrs.frozen(slots=True)
class WebFormErrorBody:
    """finAPI Web Form 2.0's ``{code, description, timestamp, endpoint}`` (or its 400 list)."""

    code: str
    description: str | None = None
    endpoint: str | None = None

    @property
    def message(self) -> str | None:
        """The description."""
        return self.description


@attrs.frozen(slots=True)
class UnparsedErrorBody:
    """A body in none of the known shapes (HTML error page, truncated JSON, empty).

    Only its size and content type are kept: an unknown body could echo anything back.
    """

    content_type: str | None
    size: int

    @property
    def code(self) -> None:
        """No code could be read."""
        return None

    @property
    def message(self) -> None:
        """No message could be read."""
        return None


ErrorBody: TypeAlias = (
    FinApiErrorBody | OAuthErrorBody | EverifinErrorBody | WebFormErrorBody | UnparsedErrorBody
)

_MAX_TEXT: Final = 500


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:_MAX_TEXT]


def _parse_error_list(
    errors: list[Any], meta: object, document: Mapping[str, Any]
) -> ErrorBody | None:
    entries = [entry for entry in errors if isinstance(entry, Mapping)]
    if not entries:
        return None
    if all("field" in entry and "code" not in entry for entry in entries):
        # Web Form 2.0 validation errors: [{field, message}].
        described = "; ".join(f"{entry.get('field')}: {entry.get('message')}" for entry in entries)
        return WebFormErrorBody("BAD_REQUEST", _text(described), _text(document.get("endpoint")))
    if any("title" in entry or "detail" in entry for entry in entries) or "meta" in document:
        return EverifinErrorBody(
            errors=tuple(
                EverifinErrorDetail(
                    code=_text(entry.get("code")) or "UNKNOWN",
                    title=_text(entry.get("title")),
                    detail=_text(entry.get("detail")),
                )
                for entry in entries
            ),
            meta=dict(meta) if isinstance(meta, Mapping) else {},
        )
    return FinApiErrorBody(
        errors=tuple(
            FinApiErrorDetail(
                code=_text(entry.get("code")) or "UNKNOWN",
                message=_text(entry.get("message")),
                type=_text(entry.get("type")),
                multi_step_authentication=(
                    dict(entry["multiStepAuthentication"])
                    if isinstance(entry.get("multiStepAuthentication"), Mapping)
                    else None
                ),
            )
            for entry in entries
        ),
        request_id=_text(document.get("requestId")),
        date=_text(document.get("date")),
        endpoint=_text(document.get("endpoint")),
        auth_context=_text(document.get("authContext")),
        bank=_text(document.get("bank")),
    )


def parse_error_body(data: bytes, content_type: str | None = None) -> ErrorBody:
    """Parse an error response body into one of the known shapes. Never raises.

    Recognises finAPI's ``{errors: [{message, code, type}], requestId, ...}``, Everifin's
    ``{errors: [{code, title, detail}], meta}``, and OAuth's ``{error, error_description}``
    (also finAPI's misspelt ``errorDescription``). Anything else is an
    :class:`UnparsedErrorBody`.
    """
    try:
        document = parse_json(data) if data else None
    except (ValueError, UnicodeDecodeError):
        document = None
    if isinstance(document, Mapping):
        errors = document.get("errors")
        if isinstance(errors, list):
            parsed = _parse_error_list(errors, document.get("meta"), document)
            if parsed is not None:
                return parsed
        code = document.get("code")
        if isinstance(code, str) and code and "description" in document:
            return WebFormErrorBody(
                code[:_MAX_TEXT],
                _text(document.get("description")),
                _text(document.get("endpoint")),
            )
        error = document.get("error")
        if isinstance(error, str) and error:
            return OAuthErrorBody(
                error=error[:_MAX_TEXT],
                error_description=_text(
                    document.get("error_description", document.get("errorDescription"))
                ),
                error_uri=_text(document.get("error_uri")),
            )
    return UnparsedErrorBody(content_type=content_type, size=len(data))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read ``Retry-After`` as seconds from now (delta-seconds or an HTTP date).

    Returns ``None`` when the header is absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class ApiError(AiofinaccessError):
    """The provider answered with an HTTP error status.

    Attributes:
        status: The HTTP status.
        request_id: The ``X-Request-Id`` of the exchange (ours or the provider's), for support.
        body: The parsed body (:data:`ErrorBody`).
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


_STATUS_ERRORS: Final[dict[int, type[ApiError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    423: LockedError,
    429: RateLimitedError,
}


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
            the app can ask that user to connect again. Never part of the message, which
            logs keep: that names the hash only.
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


_INVALID_CLIENT_CODES: Final = frozenset({"invalid_client", "unauthorized_client"})


def error_from_response(
    status: int,
    data: bytes,
    headers: Mapping[str, str],
    *,
    request_id: str | None = None,
    context: str | None = None,
    token_endpoint: bool = False,
) -> ApiError:
    """Build the right :class:`ApiError` subclass for an HTTP error response.

    Args:
        status: HTTP status.
        data: Raw body bytes.
        headers: Response headers (case-insensitive mapping).
        request_id: The request id we sent; the response's ``X-Request-Id`` wins if present.
        context: A short label for the message, e.g. ``"token request"``.
        token_endpoint: The response came from a token endpoint, where a bare 401 means the
            client credentials were refused.
    """
    body = parse_error_body(data, headers.get("Content-Type"))
    request_id = headers.get("X-Request-Id") or request_id
    retry_after = parse_retry_after(headers.get("Retry-After"))
    kwargs: dict[str, Any] = {
        "request_id": request_id,
        "retry_after": retry_after,
        "context": context,
    }
    if isinstance(body, OAuthErrorBody) and token_endpoint:
        if body.error in _INVALID_CLIENT_CODES or status == 401:
            return InvalidClientError(status, body, **kwargs)
        return OAuthError(status, body, **kwargs)
    if token_endpoint:
        if status == 401:
            return InvalidClientError(
                status, OAuthErrorBody("invalid_client", "client authentication failed"), **kwargs
            )
        # finAPI answers 423 when the user is locked after too many failed logins.
        return (LockedError if status == 423 else ApiError)(status, body, **kwargs)
    if status == 422 and body.code == "ENTITY_EXISTS":
        return EntityExistsError(status, body, **kwargs)
    error_type = _STATUS_ERRORS.get(status, ServerError if status >= 500 else ApiError)
    return error_type(status, body, **kwargs)
