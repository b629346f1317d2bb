"""The token-endpoint client: every grant, revocation, logout and discovery.

Each grant is a pure *build* function (provider, client, grant fields -> :class:`HttpRequest`)
and every response goes through one pure *parse* function, which first acquisition and renewal
share; :class:`OAuthClient` joins them. Client authentication follows
:class:`~aiofinaccess.oauth.providers.ClientAuthMethod` (``client_secret_basic`` form-encodes
each part first, RFC 6749 2.3.1).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from typing import Final, Literal
from urllib.parse import quote_plus

import aiohttp
from yarl import URL

from ..core.clock import SYSTEM_CLOCK, Clock, anchor_now
from ..core.errors import (
    ApiError,
    ConfigurationError,
    OAuthError,
    ReauthorizationRequired,
    TokenResponseError,
)
from ..core.tokens import Anchor, ClientCredentials, Secret, TokenSet, parse_token_response
from .providers import ClientAuthMethod, Provider, RevocationStyle, check_discovery
from .transport import HttpRequest, HttpResponse, Pairs, new_request_id, send

__all__ = [
    "OAuthClient",
    "build_logout_request",
    "build_revocation_request",
    "build_token_request",
    "discover",
    "parse_token_http_response",
]

logger = logging.getLogger("aiofinaccess")

TokenTypeHint = Literal["access_token", "refresh_token"]

#: OAuth error codes that mean the grant (refresh token, code, password) is dead for good.
DEAD_GRANT_ERRORS: Final = frozenset({"invalid_grant", "invalid_scope"})


def _client_auth(provider: Provider, client: ClientCredentials) -> tuple[Pairs, Pairs]:
    """Return (form fields, headers) that authenticate ``client``."""
    method = provider.client_auth
    if method is ClientAuthMethod.CLIENT_SECRET_BASIC:
        if client.client_secret is None:
            raise ConfigurationError("client_secret is required for client_secret_basic")
        raw = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret.reveal())}"
        header = Secret("Basic " + base64.b64encode(raw.encode()).decode())
        return (), (("Authorization", header),)
    form: list[tuple[str, str | Secret]] = [("client_id", client.client_id)]
    if method is ClientAuthMethod.CLIENT_SECRET_POST and client.client_secret is not None:
        form.append(("client_secret", client.client_secret))
    return tuple(form), ()


def build_token_request(
    provider: Provider,
    client: ClientCredentials,
    grant_type: str,
    fields: Iterable[tuple[str, str | Secret | None]] = (),
    *,
    request_id: str | None = None,
) -> HttpRequest:
    """Build a token request: form-encoded, client authenticated, ``None`` fields dropped."""
    auth_form, auth_headers = _client_auth(provider, client)
    form = (
        ("grant_type", grant_type),
        *((name, value) for name, value in fields if value is not None),
        *auth_form,
    )
    headers: Pairs = (
        ("Accept", "application/json"),
        ("X-Request-Id", request_id or new_request_id()),
        *auth_headers,
    )
    return HttpRequest("POST", provider.token_url, form=form, headers=headers)


def build_revocation_request(
    provider: Provider,
    client: ClientCredentials,
    token: Secret,
    *,
    hint: TokenTypeHint | None = None,
    client_bearer: Secret | None = None,
) -> HttpRequest:
    """Build an RFC 7009 revocation request in the provider's style.

    finAPI authorises revocation with the *client's* access token (``client_bearer``); v2
    takes a form body, v1 query parameters. Keycloak authenticates the client as at the token
    endpoint.
    """
    if provider.revocation_url is None:
        raise ConfigurationError(f"provider {provider.name} has no revocation_url")
    params: Pairs = (("token", token),) + ((("token_type_hint", hint),) if hint else ())
    headers: Pairs = (("X-Request-Id", new_request_id()),)
    style = provider.revocation_style
    if style is RevocationStyle.RFC7009:
        auth_form, auth_headers = _client_auth(provider, client)
        return HttpRequest(
            "POST", provider.revocation_url, form=params + auth_form, headers=headers + auth_headers
        )
    if client_bearer is None:
        raise ConfigurationError(f"provider {provider.name} revokes with a client access token")
    bearer: Pairs = (("Authorization", Secret("Bearer " + client_bearer.reveal())),)
    if style is RevocationStyle.CLIENT_BEARER_FORM:
        return HttpRequest("POST", provider.revocation_url, form=params, headers=headers + bearer)
    return HttpRequest("POST", provider.revocation_url, query=params, headers=headers + bearer)


def build_logout_request(
    provider: Provider, client: ClientCredentials, refresh_token: Secret
) -> HttpRequest:
    """Build a Keycloak back-channel logout (ends the session behind ``refresh_token``)."""
    if provider.logout_url is None:
        raise ConfigurationError(f"provider {provider.name} has no logout_url")
    auth_form, auth_headers = _client_auth(provider, client)
    return HttpRequest(
        "POST",
        provider.logout_url,
        form=(("refresh_token", refresh_token), *auth_form),
        headers=(("X-Request-Id", new_request_id()), *auth_headers),
    )


def _raise_unless_ok(response: HttpResponse, context: str) -> None:
    """Raise the typed error for a non-2xx answer from a token, revocation or logout endpoint."""
    if not response.ok:
        from .error_bodies import error_from_response  # noqa: PLC0415  (the error path only)

        raise error_from_response(
            response.status,
            response.body,
            response.headers,
            request_id=response.request_id,
            context=context,
            token_endpoint=True,
        )


def parse_token_http_response(
    provider: Provider, response: HttpResponse, *, sent: Anchor
) -> TokenSet:
    """Turn a token endpoint's HTTP response into a :class:`TokenSet` or a typed error.

    Raises:
        InvalidClientError: The client credentials were refused.
        OAuthError: Any other OAuth-shaped refusal.
        ApiError: A refusal in another shape (finAPI's ``errors`` list, an HTML page...).
        TokenResponseError: 2xx, but not a usable token response.
    """
    _raise_unless_ok(response, "token request")
    try:
        document = response.json()
    except (ValueError, UnicodeDecodeError):
        raise TokenResponseError(
            f"token response is not JSON (HTTP {response.status}, "
            f"{response.headers.get('Content-Type', 'no content type')})"
        ) from None
    return parse_token_response(
        document,
        sent=sent,
        zero_expires_in_means_never=provider.zero_expires_in_means_never,
        default_expires_in=provider.default_expires_in,
    )


class OAuthClient:
    """Talks to one provider's token, revocation and logout endpoints for one client.

    It keeps no tokens: it obtains them. Caching, single-flight and persistence belong to
    :class:`~aiofinaccess.session.manager.SessionManager`, which uses one of these per provider.

    Args:
        provider: The provider.
        client: The client's id and secret.
        session: The aiohttp session to send on (not closed by this object).
        clock: Clock used to anchor token lifetimes at send time.
        timeout: Total seconds for one exchange. Generous by default: a refresh that times
            out after the server rotated the token loses that token.
    """

    def __init__(
        self,
        provider: Provider,
        client: ClientCredentials,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = SYSTEM_CLOCK,
        timeout: float = 30.0,
    ) -> None:
        self.provider = provider
        self.client = client
        self._session = session
        self._clock = clock
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"OAuthClient(provider={self.provider.name!r}, client_id={self.client.client_id!r})"

    async def _token(
        self, grant_type: str, fields: Iterable[tuple[str, str | Secret | None]]
    ) -> TokenSet:
        request = build_token_request(self.provider, self.client, grant_type, fields)
        sent = anchor_now(self._clock)
        logger.debug(
            "token request %s to %s (request id %s)",
            grant_type,
            self.provider.name,
            request.header("X-Request-Id"),
            extra={"aiofinaccess_provider": self.provider.name, "aiofinaccess_grant": grant_type},
        )
        trace = {"provider": self.provider.name, "grant": grant_type}
        response = await send(self._session, request, timeout=self._timeout, trace=trace)
        return parse_token_http_response(self.provider, response, sent=sent)

    def _scope(self, scopes: Iterable[str] | None) -> str | None:
        chosen = tuple(scopes) if scopes is not None else self.provider.default_scopes
        return " ".join(chosen) or None

    async def client_credentials(self, *, scopes: Iterable[str] | None = None) -> TokenSet:
        """Obtain (or renew) the client's own token."""
        return await self._token("client_credentials", [("scope", self._scope(scopes))])

    async def password(self, username: str, password: Secret | str) -> TokenSet:
        """Obtain (or renew) a user's token with the resource-owner password grant."""
        return await self._token(
            "password",
            [("username", username), ("password", Secret(password))],
        )

    async def refresh(
        self, refresh_token: Secret, *, scopes: Iterable[str] | None = None
    ) -> TokenSet:
        """Renew with a refresh token.

        The result keeps nothing of the old set: callers merge (see
        :meth:`TokenSet.merged_after_refresh`).

        Raises:
            ReauthorizationRequired: ``invalid_grant`` (or ``invalid_scope``): the refresh
                token is dead, whatever the description says.
        """
        try:
            return await self._token(
                "refresh_token",
                [("refresh_token", refresh_token), ("scope", " ".join(scopes) if scopes else None)],
            )
        except ApiError as exc:
            reason = self.dead_grant_reason(exc)
            if reason is not None:
                raise ReauthorizationRequired(None, reason, exc) from exc
            raise

    def dead_grant_reason(self, error: ApiError) -> str | None:
        """Why ``error`` from the token endpoint means the grant is dead, or ``None``.

        OAuth's ``invalid_grant`` (and ``invalid_scope``) always do. A provider that refuses
        grants in its own error shape names the status it uses (finAPI: 400, "bad user
        credentials or invalid refresh token"). Descriptions are never consulted.
        """
        if isinstance(error, OAuthError):
            return error.error if error.error in DEAD_GRANT_ERRORS else None
        if error.status == self.provider.refused_grant_status:
            return error.code or "refused_grant"
        return None

    async def authorization_code(
        self, code: Secret | str, redirect_uri: str, *, code_verifier: Secret | None = None
    ) -> TokenSet:
        """Exchange an authorization code (once: a second exchange kills the login at Keycloak)."""
        return await self._token(
            "authorization_code",
            [
                ("code", Secret(code)),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier),
            ],
        )

    async def revoke(
        self,
        token: Secret,
        *,
        hint: TokenTypeHint | None = None,
        client_bearer: Secret | None = None,
    ) -> None:
        """Revoke ``token`` (RFC 7009). Unknown tokens are not an error (the RFC says 200)."""
        request = build_revocation_request(
            self.provider, self.client, token, hint=hint, client_bearer=client_bearer
        )
        await self._expect_success(request, "revocation")

    async def logout(self, refresh_token: Secret) -> None:
        """End the Keycloak session behind ``refresh_token``."""
        await self._expect_success(
            build_logout_request(self.provider, self.client, refresh_token), "logout"
        )

    async def _expect_success(self, request: HttpRequest, what: str) -> None:
        trace = {"provider": self.provider.name, "grant": what}
        response = await send(self._session, request, timeout=self._timeout, trace=trace)
        _raise_unless_ok(response, what)


async def discover(
    session: aiohttp.ClientSession,
    issuer: str,
    *,
    name: str,
    api_url: str | URL | None = None,
    default_scopes: tuple[str, ...] = (),
    allow_insecure_http: bool = False,
    timeout: float = 30.0,
) -> Provider:
    """Fetch the issuer's metadata and build a :class:`Provider`.

    Tries OpenID Connect Discovery (``{issuer}/.well-known/openid-configuration``) first, then,
    when that answers 4xx, OAuth 2.0 Authorization Server Metadata (RFC 8414): the well-known
    segment goes between host and path, ``https://host/.well-known/oauth-authorization-server
    /tenant`` for the issuer ``https://host/tenant``. Either document must name ``issuer``
    exactly. ``manager.http_session()`` is a session to pass.

    The issuer, and every endpoint of the document, must be https (or http on loopback)
    unless ``allow_insecure_http``: whoever sits on a plain-http path would choose where the
    client secret and the codes go. The issuer is checked before anything is sent.

    Raises:
        ConfigurationError: The issuer or an endpoint breaks that rule, or there is no
            document, it is not JSON, or it names another issuer.
        TransportError: The issuer could not be reached.
    """
    check_discovery({}, issuer, allow_insecure_http=allow_insecure_http)
    base = URL(issuer.rstrip("/"))
    path = base.path.rstrip("/")
    answers: list[str] = []
    for url in (
        base.with_path(path + "/.well-known/openid-configuration"),
        base.with_path("/.well-known/oauth-authorization-server" + path),
    ):
        response = await send(session, HttpRequest("GET", url), timeout=timeout)
        answers.append(f"{url.path} answered HTTP {response.status}")
        if response.ok or not 400 <= response.status < 500:  # 5xx is not "not published here"
            break
    if not response.ok:
        raise ConfigurationError(f"issuer {issuer}: no metadata ({'; '.join(answers)})")
    try:
        document = response.json()
    except ValueError:
        raise ConfigurationError(f"issuer {issuer}: discovery document is not JSON") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"issuer {issuer}: discovery document is not an object")
    return Provider.from_discovery(
        document,
        name=name,
        issuer=issuer,
        api_url=api_url,
        default_scopes=default_scopes,
        allow_insecure_http=allow_insecure_http,
    )
