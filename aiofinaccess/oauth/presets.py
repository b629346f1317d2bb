"""Provider presets: the finAPI, Everifin and generic OIDC/Keycloak builders of a Provider.

* :class:`FinApi` - finAPI Access (sandbox, live or any base URL; v2 paths by default, v1 as
  an option); ``expires_in: 0`` means "never expires"; revocation is authorised by the
  *client's* bearer token.
* :class:`Everifin` - Everifin BankConnect on Keycloak; the IdP base URL includes ``/auth``.
* :class:`Oidc` - any standards-compliant server: explicit endpoints, a Keycloak realm, or a
  discovery document (:func:`~aiofinaccess.oauth.client.discover`).

Values the providers do not publish (finAPI's token path for v2 clients, Everifin's API
prefix, whether finAPI rotates refresh tokens) are parameters with the safest default.
"""

from __future__ import annotations

from typing import Final, Literal

from yarl import URL

from ..core.errors import ConfigurationError
from .providers import ClientAuthMethod, Provider, RevocationStyle

__all__ = ["ApiVersion", "Everifin", "FinApi", "Oidc"]

#: The providers' own hosts, by environment: one provider's hosts come from one environment.
_ENVIRONMENTS: Final = {
    "sandbox.finapi.io": "sandbox",
    "webform-sandbox.finapi.io": "sandbox",
    "live.finapi.io": "live",
    "webform-live.finapi.io": "live",
    "app.stage.everifin.com": "stage",
    "api.stage.everifin.com": "stage",
    "pay.stage.everifin.com": "stage",
    "app.everifin.com": "production",
    "api.everifin.com": "production",
    "pay.everifin.com": "production",
}


def _one_environment(**urls: str | URL | None) -> None:
    """Refuse known hosts of two environments (a token of one is worthless at the other)."""
    known = {
        name: environment
        for name, url in urls.items()
        if url is not None and (environment := _ENVIRONMENTS.get(URL(str(url)).host or ""))
    }
    if len(set(known.values())) > 1:
        mix = ", ".join(f"{name} is {environment}'s" for name, environment in known.items())
        raise ConfigurationError(f"hosts of two environments ({mix}): take all from one")


# ---------------------------------------------------------------------------------------------
# finAPI Access

ApiVersion = Literal["v1", "v2"]


class FinApi:
    """Presets for finAPI Access.

    >>> FinApi.sandbox().token_url
    URL('https://sandbox.finapi.io/api/v2/oauth/token')
    >>> FinApi.sandbox(api_version="v1").token_url
    URL('https://sandbox.finapi.io/oauth/token')
    """

    SANDBOX_URL: Final = "https://sandbox.finapi.io"
    LIVE_URL: Final = "https://live.finapi.io"
    WEB_FORM_SANDBOX_URL: Final = "https://webform-sandbox.finapi.io"
    WEB_FORM_LIVE_URL: Final = "https://webform-live.finapi.io"

    @staticmethod
    def sandbox(*, api_version: ApiVersion = "v2", name: str = "finapi") -> Provider:
        """finAPI's sandbox environment."""
        return FinApi.at(
            FinApi.SANDBOX_URL,
            web_form_url=FinApi.WEB_FORM_SANDBOX_URL,
            api_version=api_version,
            name=name,
        )

    @staticmethod
    def live(*, api_version: ApiVersion = "v2", name: str = "finapi") -> Provider:
        """finAPI's live environment."""
        return FinApi.at(
            FinApi.LIVE_URL,
            web_form_url=FinApi.WEB_FORM_LIVE_URL,
            api_version=api_version,
            name=name,
        )

    @staticmethod
    def at(
        base_url: str | URL,
        *,
        web_form_url: str | URL | None = None,
        api_version: ApiVersion = "v2",
        name: str = "finapi",
        token_path: str | None = None,
        rotates_refresh_tokens: bool = False,
        allow_insecure_http: bool = False,
    ) -> Provider:
        """finAPI Access at any base URL (a sandbox on this machine, a proxy...).

        Args:
            base_url: Scheme and host, e.g. ``http://127.0.0.1:8080``, optionally with a path
                that every finAPI path goes below (a proxy's ``https://gw.example/finapi``).
            web_form_url: Web Form 2.0 host; defaults to ``base_url`` (the local sandbox
                serves both).
            api_version: ``"v2"`` (``/api/v2/...``, token at ``/api/v2/oauth/token``) or
                ``"v1"`` (``/api/v1/...``, token at ``/oauth/token``).
            token_path: Override the token path; revocation follows it (UNCERTAIN in the
                research whether v2 clients may use the root ``/oauth/token``).
            rotates_refresh_tokens: finAPI does not document rotation; the SDK keeps the old
                refresh token unless a new one is returned either way.
        """
        if api_version not in ("v1", "v2"):
            raise ConfigurationError(f"api_version must be 'v1' or 'v2', got {api_version!r}")
        _one_environment(base_url=base_url, web_form_url=web_form_url)
        base = URL(str(base_url).rstrip("/"))
        if base.query_string or base.fragment:
            raise ConfigurationError(f"finAPI base_url must have no query or fragment: {base_url}")
        # A path (a proxy's /finapi) is kept: every finAPI path goes below it.
        prefix = base.path.rstrip("/")
        default_token_path = "/api/v2/oauth/token" if api_version == "v2" else "/oauth/token"
        token = prefix + (token_path or default_token_path)
        revoke = token.rsplit("/", 1)[0] + "/revoke"
        return Provider(
            name=name,
            token_url=base.with_path(token),
            revocation_url=base.with_path(revoke),
            api_url=base.with_path(f"{prefix}/api/{api_version}"),
            revocation_style=(
                RevocationStyle.CLIENT_BEARER_FORM
                if api_version == "v2"
                else RevocationStyle.CLIENT_BEARER_QUERY
            ),
            zero_expires_in_means_never=True,
            rotates_refresh_tokens=rotates_refresh_tokens,
            web_form_url=web_form_url if web_form_url is not None else base,
            refused_grant_status=400,
            allow_insecure_http=allow_insecure_http,
        )


# ---------------------------------------------------------------------------------------------
# Keycloak (Everifin and generic)


def _keycloak(
    *,
    name: str,
    idp_url: str | URL,
    realm: str,
    api_url: str | URL | None,
    scopes: tuple[str, ...],
    client_auth: ClientAuthMethod,
    allow_insecure_http: bool,
    require_callback_iss: bool,
    session_max: float | None = None,
) -> Provider:
    if not realm or "/" in realm:
        raise ConfigurationError(f"realm must be a non-empty name without '/', got {realm!r}")
    realm_url = URL(str(idp_url).rstrip("/")) / "realms" / realm
    oidc = realm_url / "protocol" / "openid-connect"
    return Provider(
        name=name,
        token_url=oidc / "token",
        authorization_url=oidc / "auth",
        revocation_url=oidc / "revoke",
        logout_url=oidc / "logout",
        issuer=str(realm_url),
        api_url=api_url,
        client_auth=client_auth,
        rotates_refresh_tokens=True,
        default_scopes=scopes,
        allow_insecure_http=allow_insecure_http,
        require_callback_iss=require_callback_iss,
        session_max=session_max,
    )


class Everifin:
    """Presets for Everifin BankConnect (Keycloak realm ``everifin_app`` by default).

    >>> Everifin.stage().token_url
    URL('https://app.stage.everifin.com/auth/realms/everifin_app/protocol/openid-connect/token')
    """

    STAGE_IDP_URL: Final = "https://app.stage.everifin.com/auth"
    PRODUCTION_IDP_URL: Final = "https://app.everifin.com/auth"
    STAGE_API_URL: Final = "https://api.stage.everifin.com"
    PRODUCTION_API_URL: Final = "https://api.everifin.com"
    DEFAULT_REALM: Final = "everifin_app"

    @staticmethod
    def stage(
        *,
        realm: str = DEFAULT_REALM,
        scopes: tuple[str, ...] = ("ais",),
        api_prefix: str = "/v1",
        name: str = "everifin",
        session_max: float | None = None,
    ) -> Provider:
        """Everifin's testing ("stage") environment."""
        return Everifin.at(
            Everifin.STAGE_IDP_URL,
            Everifin.STAGE_API_URL,
            realm=realm,
            scopes=scopes,
            api_prefix=api_prefix,
            name=name,
            session_max=session_max,
        )

    @staticmethod
    def production(
        *,
        realm: str = DEFAULT_REALM,
        scopes: tuple[str, ...] = ("ais",),
        api_prefix: str = "/v1",
        name: str = "everifin",
        session_max: float | None = None,
    ) -> Provider:
        """Everifin's production environment."""
        return Everifin.at(
            Everifin.PRODUCTION_IDP_URL,
            Everifin.PRODUCTION_API_URL,
            realm=realm,
            scopes=scopes,
            api_prefix=api_prefix,
            name=name,
            session_max=session_max,
        )

    @staticmethod
    def at(
        idp_url: str | URL,
        api_url: str | URL,
        *,
        realm: str = DEFAULT_REALM,
        scopes: tuple[str, ...] = ("ais",),
        api_prefix: str = "/v1",
        name: str = "everifin",
        client_auth: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_POST,
        allow_insecure_http: bool = False,
        require_callback_iss: bool = True,
        session_max: float | None = None,
    ) -> Provider:
        """Everifin at explicit hosts.

        Args:
            idp_url: Keycloak base *including* the legacy ``/auth`` prefix.
            api_url: BankConnect host.
            realm: Keycloak realm Everifin assigned (default ``everifin_app``).
            scopes: ``("ais",)``, ``("pis",)`` or both.
            api_prefix: Path prefix of the BankConnect API (UNCERTAIN: ``/v1`` or ``/api/v1``).
            require_callback_iss: Refuse callbacks without ``iss``; turn off only for a
                client set to "exclude issuer from authentication response".
            session_max: Seconds a login lasts at most however often it is refreshed (Keycloak's
                SSO Session Max; UNCERTAIN: Everifin does not publish it, Keycloak's default is
                36000); ``None``: the refresh token's lifetime is the only end known.
        """
        unknown = set(scopes) - {"ais", "pis", "openid", "offline_access"}
        if unknown:
            raise ConfigurationError(f"scopes has unknown Everifin scopes: {sorted(unknown)}")
        _one_environment(idp_url=idp_url, api_url=api_url)
        api = URL(str(api_url).rstrip("/"))
        return _keycloak(
            name=name,
            idp_url=idp_url,
            realm=realm,
            api_url=api.with_path(api.path.rstrip("/") + "/" + api_prefix.strip("/")),
            scopes=scopes,
            client_auth=client_auth,
            allow_insecure_http=allow_insecure_http,
            require_callback_iss=require_callback_iss,
            session_max=session_max,
        )

    STAGE_PAY_URL: Final = "https://pay.stage.everifin.com"
    PRODUCTION_PAY_URL: Final = "https://pay.everifin.com"
    PAYGATE_REALM: Final = "everifin_paygate"

    @staticmethod
    def paygate_at(
        idp_url: str | URL,
        pay_url: str | URL,
        *,
        realm: str = PAYGATE_REALM,
        name: str = "everifin_paygate",
        allow_insecure_http: bool = False,
    ) -> Provider:
        """Everifin Paygate (the merchant API: ``client_credentials`` only) at explicit hosts.

        Args:
            idp_url: Keycloak base *including* the legacy ``/auth`` prefix.
            pay_url: Paygate's host (its paths carry ``/api/v1`` and ``/api/v2``).

        Raises:
            ConfigurationError: ``idp_url`` and ``pay_url`` are Everifin's hosts of two
                environments (stage and production).
        """
        _one_environment(idp_url=idp_url, pay_url=pay_url)
        return _keycloak(
            name=name,
            idp_url=idp_url,
            realm=realm,
            api_url=URL(str(pay_url).rstrip("/")),
            scopes=(),
            client_auth=ClientAuthMethod.CLIENT_SECRET_POST,
            allow_insecure_http=allow_insecure_http,
            require_callback_iss=True,
        )

    @staticmethod
    def paygate_stage() -> Provider:
        """Paygate's testing environment."""
        return Everifin.paygate_at(Everifin.STAGE_IDP_URL, Everifin.STAGE_PAY_URL)

    @staticmethod
    def paygate_production() -> Provider:
        """Paygate's production environment."""
        return Everifin.paygate_at(Everifin.PRODUCTION_IDP_URL, Everifin.PRODUCTION_PAY_URL)


class Oidc:
    """Presets for any OAuth 2 / OpenID Connect server.

    For issuer discovery use :func:`aiofinaccess.oauth.client.discover`, which fetches the
    document and calls :meth:`~aiofinaccess.oauth.providers.Provider.from_discovery`.
    """

    @staticmethod
    def endpoints(
        *,
        name: str,
        token_url: str | URL,
        authorization_url: str | URL | None = None,
        revocation_url: str | URL | None = None,
        logout_url: str | URL | None = None,
        issuer: str | None = None,
        api_url: str | URL | None = None,
        client_auth: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_POST,
        scopes: tuple[str, ...] = (),
        rotates_refresh_tokens: bool = True,
        allow_insecure_http: bool = False,
        require_callback_iss: bool = False,
    ) -> Provider:
        """A provider with explicitly named endpoints."""
        return Provider(
            name=name,
            token_url=URL(str(token_url)),
            authorization_url=authorization_url,
            revocation_url=revocation_url,
            logout_url=logout_url,
            issuer=issuer,
            api_url=api_url,
            client_auth=client_auth,
            rotates_refresh_tokens=rotates_refresh_tokens,
            default_scopes=scopes,
            allow_insecure_http=allow_insecure_http,
            require_callback_iss=require_callback_iss,
        )

    @staticmethod
    def keycloak(
        base_url: str | URL,
        realm: str,
        *,
        name: str = "keycloak",
        api_url: str | URL | None = None,
        scopes: tuple[str, ...] = (),
        client_auth: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_POST,
        allow_insecure_http: bool = False,
        require_callback_iss: bool = True,
    ) -> Provider:
        """A Keycloak realm. ``base_url`` includes ``/auth`` when the server still uses it.

        ``require_callback_iss``: Keycloak sends ``iss`` unless the client is set to "exclude
        issuer from authentication response"; only then turn it off.
        """
        return _keycloak(
            name=name,
            idp_url=base_url,
            realm=realm,
            api_url=api_url,
            scopes=scopes,
            client_auth=client_auth,
            allow_insecure_http=allow_insecure_http,
            require_callback_iss=require_callback_iss,
        )
