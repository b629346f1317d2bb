"""The provider record: endpoints, client authentication and quirks as data, and the URL rules.

:class:`Provider` is a frozen record; every configured URL must be absolute http(s), plain
http only on loopback unless allowed; :func:`origin_of` gives the RFC 6454 origins bearer
tokens may go to. The presets live in :mod:`aiofinaccess.oauth.presets`.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from yarl import URL

from ..core._repr import fields_repr
from ..core.errors import ConfigurationError

__all__ = [
    "ClientAuthMethod",
    "Origin",
    "Provider",
    "RevocationStyle",
    "check_discovery",
    "origin_of",
]


class ClientAuthMethod(enum.Enum):
    """How the client authenticates at the token endpoint (RFC 6749 2.3.1)."""

    CLIENT_SECRET_POST = "client_secret_post"
    CLIENT_SECRET_BASIC = "client_secret_basic"
    NONE = "none"


class RevocationStyle(enum.Enum):
    """How a revocation request is built."""

    #: RFC 7009: form body, client authenticated as at the token endpoint (Keycloak).
    RFC7009 = "rfc7009"
    #: finAPI v2: form body, ``Authorization: Bearer <client access token>``.
    CLIENT_BEARER_FORM = "client_bearer_form"
    #: finAPI v1: query parameters, ``Authorization: Bearer <client access token>``.
    CLIENT_BEARER_QUERY = "client_bearer_query"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(setting: str, url: URL | None, *, allow_insecure_http: bool) -> None:
    if url is None:
        return
    if not url.is_absolute() or url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"{setting} must be an absolute http(s) URL, got {url}")
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        raise ConfigurationError(
            f"{setting} uses plain http on a non-loopback host ({url.host}); "
            "use https or pass allow_insecure_http=True"
        )


def check_discovery(
    document: Mapping[str, Any], issuer: str | None, *, allow_insecure_http: bool
) -> None:
    """Apply the URL rule to the issuer and to every endpoint an OIDC/OAuth document names.

    Endpoints the SDK does not use today are checked as well: an app (or a later version)
    may use them, and a document naming a plain-http endpoint off loopback is suspect whole.

    Raises:
        ConfigurationError: A URL is not absolute http(s), or plain http off loopback.
    """
    urls: list[tuple[str, object]] = [("issuer", issuer), ("issuer", document.get("issuer"))]
    urls += [
        (name, value)
        for name, value in document.items()
        if name.endswith("_endpoint") or name == "jwks_uri"
    ]
    aliases = document.get("mtls_endpoint_aliases")
    if isinstance(aliases, Mapping):
        urls += [(f"mtls_endpoint_aliases.{name}", value) for name, value in aliases.items()]
    for name, value in urls:
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigurationError(f"discovery document: {name} is not a URL string")
        _check_url(name, URL(value), allow_insecure_http=allow_insecure_http)


def _url(value: str | URL | None) -> URL | None:
    if value is None:
        return None
    return value if isinstance(value, URL) else URL(value)


def _urls(values: Iterable[str | URL]) -> tuple[URL, ...]:
    if isinstance(values, str | URL):  # one origin given bare: not a string of characters
        values = (values,)
    return tuple(URL(str(value)) for value in values)


#: An RFC 6454 origin: scheme, host and port (the default port filled in).
Origin = tuple[str, str, int]


def origin_of(url: URL) -> Origin | None:
    """The origin of an absolute http(s) URL, or ``None`` for anything else."""
    if url.scheme not in ("http", "https") or not url.host or url.port is None:
        return None
    return (url.scheme, url.host.lower(), url.port)


@attrs.frozen(slots=True)
class Provider:
    """Everything the SDK needs to know about one authorization server and its API.

    Build one with :class:`~aiofinaccess.oauth.presets.FinApi`,
    :class:`~aiofinaccess.oauth.presets.Everifin` or :class:`~aiofinaccess.oauth.presets.Oidc`
    rather than by hand.

    Args:
        name: Short id used in token keys and logs (``"finapi"``, ``"everifin"``). Two
            providers in one manager need different names.
        token_url: The token endpoint.
        authorization_url: The authorization endpoint (authorization-code flow).
        revocation_url: RFC 7009 revocation endpoint.
        logout_url: Keycloak/OIDC logout endpoint that takes a refresh token.
        issuer: The expected ``iss`` (checked on callbacks when the provider sends it).
        api_url: Base URL of the resource API, version prefix included.
        client_auth: How the client authenticates at the token endpoint.
        revocation_style: How revocation requests are built.
        zero_expires_in_means_never: ``expires_in: 0`` is a token that never expires (finAPI).
        default_expires_in: Lifetime assumed when a response has no ``expires_in``;
            ``None`` means use it until a 401.
        rotates_refresh_tokens: Every refresh spends the refresh token. When true, an
            ambiguous refresh failure is never replayed blindly.
        default_scopes: Scopes requested when the caller names none.
        web_form_url: finAPI Web Form 2.0 host (finAPI only).
        refused_grant_status: The status with which the token endpoint refuses a grant in the
            provider's own error shape (finAPI: 400 for a bad refresh token or password). Such
            a refusal of a refresh is treated like ``invalid_grant``.
        allow_insecure_http: Permit ``http://`` on non-loopback hosts.
        require_callback_iss: Refuse an authorization callback without ``iss`` (RFC 9207).
        session_max: The longest a login lasts however often it is refreshed, in seconds
            (Keycloak's SSO Session Max); ``None`` when unknown: the refresh token's own
            lifetime (``refresh_expires_in``) is then the only end known.
            On for Keycloak presets (Keycloak sends it unless a client is set to "exclude
            issuer") and for documents advertising
            ``authorization_response_iss_parameter_supported``.
        extra_api_origins: More origins (``https://host[:port]``, no path) that may receive
            this provider's bearer tokens, besides those of ``api_url`` and
            ``web_form_url``. Bearer tokens go to :meth:`api_origins` only; add one with
            ``attrs.evolve(provider, extra_api_origins=("https://files.example.com",))``.
    """

    __repr__ = fields_repr

    name: str
    token_url: URL = attrs.field(converter=URL)
    authorization_url: URL | None = attrs.field(default=None, converter=_url)
    revocation_url: URL | None = attrs.field(default=None, converter=_url)
    logout_url: URL | None = attrs.field(default=None, converter=_url)
    issuer: str | None = None
    api_url: URL | None = attrs.field(default=None, converter=_url)
    client_auth: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_POST
    revocation_style: RevocationStyle = RevocationStyle.RFC7009
    zero_expires_in_means_never: bool = False
    default_expires_in: float | None = None
    rotates_refresh_tokens: bool = True
    default_scopes: tuple[str, ...] = ()
    web_form_url: URL | None = attrs.field(default=None, converter=_url)
    refused_grant_status: int | None = None
    allow_insecure_http: bool = False
    extra_api_origins: tuple[URL, ...] = attrs.field(default=(), converter=_urls)
    require_callback_iss: bool = False
    session_max: float | None = None

    def __attrs_post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise ConfigurationError("provider name must be non-empty and contain no ':'")
        for setting in (
            "token_url",
            "authorization_url",
            "revocation_url",
            "logout_url",
            "api_url",
            "web_form_url",
        ):
            _check_url(
                setting, getattr(self, setting), allow_insecure_http=self.allow_insecure_http
            )
        for extra in self.extra_api_origins:
            _check_url("extra_api_origins", extra, allow_insecure_http=self.allow_insecure_http)
            if extra.path not in ("", "/") or extra.query_string or extra.fragment or extra.user:
                raise ConfigurationError(
                    f"extra_api_origins takes bare origins (scheme://host[:port]), got {extra}"
                )
        if self.default_expires_in is not None and not (
            math.isfinite(self.default_expires_in) and self.default_expires_in > 0
        ):
            raise ConfigurationError("default_expires_in must be a positive number or None")
        if self.session_max is not None and not (
            math.isfinite(self.session_max) and self.session_max > 0
        ):
            raise ConfigurationError("session_max must be a positive number of seconds or None")

    def api_origins(self) -> frozenset[Origin]:
        """The origins this provider's bearer tokens may be sent to (RFC 6454).

        Those of ``api_url`` and ``web_form_url``, and ``extra_api_origins``. Never the
        token endpoint's: tokens are obtained there, not spent.
        """
        urls = (self.api_url, self.web_form_url, *self.extra_api_origins)
        return frozenset(o for o in (origin_of(u) for u in urls if u is not None) if o)

    @classmethod
    def from_discovery(
        cls,
        document: Mapping[str, Any],
        *,
        name: str,
        issuer: str | None = None,
        api_url: str | URL | None = None,
        default_scopes: tuple[str, ...] = (),
        allow_insecure_http: bool = False,
    ) -> Provider:
        """Build a provider from an OpenID Provider Metadata document.

        Args:
            document: The parsed ``.well-known/openid-configuration``.
            name: The provider's name in token keys.
            issuer: The issuer the document was fetched for; it must match the document's
                ``issuer`` exactly (OIDC Discovery 4.3).

        Raises:
            ConfigurationError: A required endpoint is missing, the issuer does not match, or
                the issuer or any endpoint breaks the ``allow_insecure_http`` rule.
        """
        token_url = document.get("token_endpoint")
        if not isinstance(token_url, str):
            raise ConfigurationError("discovery document has no token_endpoint")
        check_discovery(document, issuer, allow_insecure_http=allow_insecure_http)
        doc_issuer = document.get("issuer")
        if issuer is not None and doc_issuer != issuer:
            raise ConfigurationError(
                f"issuer mismatch: discovery document says {doc_issuer!r}, expected {issuer!r}"
            )
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        client_auth = (
            ClientAuthMethod.CLIENT_SECRET_POST
            if "client_secret_post" in methods
            else ClientAuthMethod.CLIENT_SECRET_BASIC
        )

        def endpoint(key: str) -> str | None:
            value = document.get(key)
            return value if isinstance(value, str) else None

        return cls(
            name=name,
            token_url=token_url,
            authorization_url=endpoint("authorization_endpoint"),
            revocation_url=endpoint("revocation_endpoint"),
            logout_url=endpoint("end_session_endpoint"),
            issuer=doc_issuer if isinstance(doc_issuer, str) else issuer,
            api_url=api_url,
            client_auth=client_auth,
            default_scopes=default_scopes,
            allow_insecure_http=allow_insecure_http,
            require_callback_iss=(
                document.get("authorization_response_iss_parameter_supported") is True
            ),
        )
