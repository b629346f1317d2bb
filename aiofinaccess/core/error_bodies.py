"""The parsed shapes of the providers' error bodies, carried by :class:`~aiofinaccess.ApiError`.

Three shapes providers use, plus "could not parse"; read from responses by
:mod:`aiofinaccess.oauth.error_bodies`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

__all__ = [
    "ErrorBody",
    "EverifinErrorBody",
    "EverifinErrorDetail",
    "FinApiErrorBody",
    "FinApiErrorDetail",
    "OAuthErrorBody",
    "UnparsedErrorBody",
    "WebFormErrorBody",
]


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
