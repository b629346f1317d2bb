"""Reading the providers' error answers: the body parsers and the response-to-error mapping.

Turns a status, bytes and headers into the typed :class:`~aiofinaccess.core.errors.ApiError`
subclass that fits, carrying the parsed body (finAPI's, Everifin's, OAuth's or Web Form 2.0's
shape, else :class:`~aiofinaccess.core.error_bodies.UnparsedErrorBody`) and its ``Retry-After``.
The token-endpoint client and the API pipeline both read their errors here.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any, Final

from ..core._json import parse_json
from ..core.error_bodies import (
    ErrorBody,
    EverifinErrorBody,
    EverifinErrorDetail,
    FinApiErrorBody,
    FinApiErrorDetail,
    OAuthErrorBody,
    UnparsedErrorBody,
    WebFormErrorBody,
)
from ..core.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    EntityExistsError,
    ForbiddenError,
    InvalidClientError,
    LockedError,
    NotFoundError,
    OAuthError,
    RateLimitedError,
    ServerError,
    UnprocessableEntityError,
)

__all__ = ["error_from_response", "parse_error_body", "parse_retry_after"]

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
