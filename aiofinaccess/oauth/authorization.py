"""The front channel of the authorization-code flow: building the URL, reading the callback.

:func:`build_authorization_request` makes a fresh ``state`` and, by default, a PKCE S256 pair.
Keep the returned :class:`AuthorizationRequest` server-side (:meth:`~AuthorizationRequest.to_dict`
is for a store) and pass it to :func:`parse_callback`, which compares ``state`` in constant
time, checks ``iss`` (RFC 9207) and turns an error redirect into
:class:`~aiofinaccess.core.errors.AuthorizationDenied`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from yarl import URL

from ..core.errors import (
    AuthorizationDenied,
    AuthorizationFlowError,
    ConfigurationError,
    StateMismatchError,
)
from ..core.tokens import Secret
from .providers import Provider

__all__ = [
    "AuthorizationRequest",
    "AuthorizationResponse",
    "build_authorization_request",
    "parse_callback",
    "pkce_challenge",
]


def pkce_challenge(verifier: Secret) -> str:
    """The S256 code challenge of ``verifier``: base64url(SHA-256), no padding (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.reveal().encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _new_verifier() -> Secret:
    # 32 random bytes -> 43 base64url characters, the RFC's minimum length and its advice.
    return Secret(secrets.token_urlsafe(32))


def _endpoint_only(url: str) -> str:
    # The query carries state, the PKCE challenge and any nonce: a repr shows where, not what.
    return repr(urlsplit(url)._replace(query="", fragment="").geturl() + "?...")


@attrs.frozen(slots=True)
class AuthorizationRequest:
    """An authorization request in flight: where to send the browser and what to check later.

    Attributes:
        url: The provider's authorization URL with every parameter set, as a ``str``: what
            ``web.HTTPFound``, Starlette's ``RedirectResponse`` and ``urljoin`` take.
            :attr:`yarl_url` is the same as a :class:`yarl.URL`. Its repr shows the
            endpoint only: the query carries ``state`` (and any ``nonce``).
        state: The anti-CSRF value we expect back. Not a credential, but never log it.
        redirect_uri: Must be sent again, unchanged, with the code exchange.
        code_verifier: The PKCE verifier, or ``None`` without PKCE.
        issuer: The issuer the request was sent to; a callback's ``iss`` must match it.
        require_iss: The callback must carry ``iss`` (RFC 9207): the provider always sends
            it, so a callback without it was tampered with.
    """

    url: str = attrs.field(converter=str, repr=_endpoint_only)
    state: str = attrs.field(repr=False)
    redirect_uri: str
    code_verifier: Secret | None = None
    issuer: str | None = None
    require_iss: bool = False

    @property
    def yarl_url(self) -> URL:
        """:attr:`url` as a :class:`yarl.URL` (its query is ``yarl_url.query``)."""
        return URL(self.url)

    def to_dict(self) -> dict[str, Any]:
        """Serialise for server-side storage (reveals the verifier: store it, don't log it)."""
        data: dict[str, Any] = {
            "url": str(self.url),
            "state": self.state,
            "redirect_uri": self.redirect_uri,
            "require_iss": self.require_iss,
        }
        if self.code_verifier is not None:
            data["code_verifier"] = self.code_verifier.reveal()
        if self.issuer is not None:
            data["issuer"] = self.issuer
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizationRequest:
        """Inverse of :meth:`to_dict`."""
        verifier = data.get("code_verifier")
        return cls(
            url=data["url"],
            state=data["state"],
            redirect_uri=data["redirect_uri"],
            code_verifier=None if verifier is None else Secret(verifier),
            issuer=data.get("issuer"),
            require_iss=data.get("require_iss") is True,
        )


def build_authorization_request(
    provider: Provider,
    client_id: str,
    redirect_uri: str,
    *,
    scopes: Iterable[str] | None = None,
    pkce: bool = True,
    state: str | None = None,
    extra_params: Mapping[str, str] | None = None,
) -> AuthorizationRequest:
    """Build the URL that starts the authorization-code flow.

    Args:
        provider: Must have an ``authorization_url``.
        client_id: The client id.
        redirect_uri: Where the provider sends the browser back; registered with it.
        scopes: Scopes to ask for; the provider's defaults when ``None``.
        pkce: Add an S256 code challenge (Everifin enables PKCE on request; Keycloak ignores
            a challenge only if the client does not enforce PKCE).
        state: Use this ``state`` instead of a random one.
        extra_params: More query parameters (``prompt``, ``login_hint``, ``ui_locales``...).
            They cannot override the ones this function sets.
    """
    if provider.authorization_url is None:
        raise ConfigurationError(f"provider {provider.name} has no authorization_url")
    if not urlsplit(redirect_uri).scheme:
        # A provider compares it with a registered absolute URI; a relative one can only fail
        # there, after the user has been sent away.
        raise ConfigurationError(
            f"redirect_uri must be an absolute URL as registered at the provider, "
            f"got {redirect_uri!r}"
        )
    chosen_scopes = tuple(scopes) if scopes is not None else provider.default_scopes
    state = state or secrets.token_urlsafe(32)
    verifier = _new_verifier() if pkce else None
    params: dict[str, str] = dict(extra_params or {})
    params.update(
        response_type="code",
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state,
    )
    if chosen_scopes:
        params["scope"] = " ".join(chosen_scopes)
    if verifier is not None:
        params.update(code_challenge=pkce_challenge(verifier), code_challenge_method="S256")
    return AuthorizationRequest(
        url=provider.authorization_url.update_query(params),
        state=state,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
        issuer=provider.issuer,
        require_iss=provider.require_callback_iss,
    )


@attrs.frozen(slots=True)
class AuthorizationResponse:
    """A successful callback: the code to exchange (once) and what came with it."""

    code: Secret
    state: str = attrs.field(repr=False)
    session_state: str | None = None
    issuer: str | None = None


def parse_callback(
    callback: str | URL | Mapping[str, str],
    expected: AuthorizationRequest,
    *,
    expected_issuer: str | None = None,
) -> AuthorizationResponse:
    """Check a callback against the request we sent and extract the code.

    Args:
        callback: The full callback URL, or its query parameters.
        expected: The :class:`AuthorizationRequest` issued for this browser session.
        expected_issuer: The provider's issuer (default: the one ``expected`` was sent to);
            when the callback carries ``iss`` it must match.

    Raises:
        StateMismatchError: ``state`` missing or different (checked first, even on errors,
            so a forged error redirect is reported as what it is).
        AuthorizationDenied: The provider redirected with ``error=...``.
        AuthorizationFlowError: No code; the issuer does not match; or ``iss`` is missing
            although the provider always sends it (``expected.require_iss``, RFC 9207 2.4:
            checked on error redirects too).
    """
    if isinstance(callback, Mapping):
        query: Mapping[str, str] = callback
    else:
        query = URL(str(callback)).query
    state = query.get("state")
    if state is None or not hmac.compare_digest(state.encode(), expected.state.encode()):
        raise StateMismatchError("callback state does not match the authorization request")
    issuer = query.get("iss")
    expected_issuer = expected_issuer if expected_issuer is not None else expected.issuer
    if issuer is None and expected.require_iss:
        raise AuthorizationFlowError(
            "callback has no iss although the provider always sends it (RFC 9207): refused"
        )
    if issuer is not None and expected_issuer is not None and issuer != expected_issuer:
        raise AuthorizationFlowError(
            f"callback issuer {issuer!r} is not the expected {expected_issuer!r}"
        )
    error = query.get("error")
    if error:
        raise AuthorizationDenied(error, query.get("error_description"))
    code = query.get("code")
    if not code:
        raise AuthorizationFlowError("callback has neither code nor error")
    return AuthorizationResponse(
        code=Secret(code),
        state=state,
        session_state=query.get("session_state"),
        issuer=issuer,
    )
