"""Tests for aiofinaccess.oauth.providers and .presets: presets, discovery documents, configuration
errors."""

from __future__ import annotations

from typing import ClassVar

import pytest

from aiofinaccess import Everifin, FinApi, Oidc, Provider
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.oauth import ClientAuthMethod
from aiofinaccess.oauth.providers import RevocationStyle


class TestFinApi:
    def test_v2_paths_by_default(self) -> None:
        """Token and revoke under /api/v2/oauth; resources under /api/v2; form revocation."""
        provider = FinApi.sandbox()
        assert str(provider.token_url) == "https://sandbox.finapi.io/api/v2/oauth/token"
        assert str(provider.revocation_url) == "https://sandbox.finapi.io/api/v2/oauth/revoke"
        assert str(provider.api_url) == "https://sandbox.finapi.io/api/v2"
        assert provider.revocation_style is RevocationStyle.CLIENT_BEARER_FORM
        assert provider.zero_expires_in_means_never

    def test_v1_paths_as_an_option(self) -> None:
        """v1: root /oauth/token, query-parameter revocation."""
        provider = FinApi.live(api_version="v1")
        assert str(provider.token_url) == "https://live.finapi.io/oauth/token"
        assert str(provider.revocation_url) == "https://live.finapi.io/oauth/revoke"
        assert str(provider.api_url) == "https://live.finapi.io/api/v1"
        assert provider.revocation_style is RevocationStyle.CLIENT_BEARER_QUERY
        assert str(provider.web_form_url) == "https://webform-live.finapi.io"

    def test_custom_base_and_token_path(self) -> None:
        """A local sandbox, and the UNCERTAIN token path made configurable."""
        provider = FinApi.at("http://127.0.0.1:8080", token_path="/oauth/token")
        assert str(provider.token_url) == "http://127.0.0.1:8080/oauth/token"
        assert str(provider.revocation_url) == "http://127.0.0.1:8080/oauth/revoke"
        assert provider.web_form_url == provider.token_url.origin()

    def test_unknown_api_version_is_refused(self) -> None:
        """Names the setting."""
        with pytest.raises(ConfigurationError, match="api_version"):
            FinApi.sandbox(api_version="v3")  # type: ignore[arg-type]


class TestEverifin:
    def test_keycloak_paths_keep_the_auth_prefix(self) -> None:
        """{idp}/auth/realms/{realm}/protocol/openid-connect/..."""
        provider = Everifin.production()
        base = "https://app.everifin.com/auth/realms/everifin_app/protocol/openid-connect"
        assert str(provider.token_url) == f"{base}/token"
        assert str(provider.authorization_url) == f"{base}/auth"
        assert str(provider.logout_url) == f"{base}/logout"
        assert str(provider.revocation_url) == f"{base}/revoke"
        assert provider.issuer == "https://app.everifin.com/auth/realms/everifin_app"
        assert str(provider.api_url) == "https://api.everifin.com/v1"
        assert provider.default_scopes == ("ais",)
        assert provider.rotates_refresh_tokens

    def test_realm_prefix_and_scopes_are_configurable(self) -> None:
        """Realm, API prefix and scopes are data."""
        provider = Everifin.stage(realm="other", api_prefix="/api/v1", scopes=("ais", "pis"))
        assert "/realms/other/" in str(provider.token_url)
        assert str(provider.api_url) == "https://api.stage.everifin.com/api/v1"
        assert provider.default_scopes == ("ais", "pis")

    @pytest.mark.parametrize(
        ("kwargs", "setting"),
        [
            ({"realm": ""}, "realm"),
            ({"realm": "a/b"}, "realm"),
            ({"scopes": ("payments",)}, "scopes"),
        ],
    )
    def test_bad_settings_name_themselves(self, kwargs: dict[str, object], setting: str) -> None:
        """One-line errors that name the setting."""
        with pytest.raises(ConfigurationError, match=setting):
            Everifin.stage(**kwargs)  # type: ignore[arg-type]


class TestProvider:
    @pytest.mark.parametrize("url", ["not a url", "/relative/path", "ftp://example.com/token"])
    def test_bad_urls_are_refused(self, url: str) -> None:
        """At construction, naming the setting."""
        with pytest.raises(ConfigurationError, match="token_url"):
            Provider(name="x", token_url=url)

    def test_plain_http_only_on_loopback_unless_allowed(self) -> None:
        """TLS by default; loopback and explicit opt-in are the exceptions."""
        with pytest.raises(ConfigurationError, match="plain http"):
            Provider(name="x", token_url="http://idp.example.com/token")
        for host in ("127.0.0.1", "localhost", "[::1]"):
            Provider(name="x", token_url=f"http://{host}:8080/token")
        Provider(name="x", token_url="http://idp.example.com/token", allow_insecure_http=True)

    def test_name_cannot_hold_the_key_separator(self) -> None:
        """Names go into token keys."""
        with pytest.raises(ConfigurationError, match="name"):
            Provider(name="a:b", token_url="https://x/token")


class TestDiscovery:
    DOCUMENT: ClassVar[dict[str, object]] = {
        "issuer": "https://idp.example.com/realms/r",
        "authorization_endpoint": "https://idp.example.com/realms/r/protocol/openid-connect/auth",
        "token_endpoint": "https://idp.example.com/realms/r/protocol/openid-connect/token",
        "revocation_endpoint": "https://idp.example.com/realms/r/protocol/openid-connect/revoke",
        "end_session_endpoint": "https://idp.example.com/realms/r/protocol/openid-connect/logout",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
    }

    def test_endpoints_and_client_auth_come_from_the_document(self) -> None:
        """Basic auth is chosen when post is not offered."""
        provider = Provider.from_discovery(
            self.DOCUMENT, name="idp", issuer=self.DOCUMENT["issuer"]
        )
        assert str(provider.token_url) == self.DOCUMENT["token_endpoint"]
        assert str(provider.logout_url) == self.DOCUMENT["end_session_endpoint"]
        assert provider.client_auth is ClientAuthMethod.CLIENT_SECRET_BASIC
        assert provider.issuer == self.DOCUMENT["issuer"]

    def test_issuer_mismatch_is_refused(self) -> None:
        """OIDC Discovery 4.3."""
        with pytest.raises(ConfigurationError, match="issuer mismatch"):
            Provider.from_discovery(self.DOCUMENT, name="idp", issuer="https://evil.example.com")

    def test_missing_token_endpoint_is_refused(self) -> None:
        """Nothing to talk to."""
        with pytest.raises(ConfigurationError, match="token_endpoint"):
            Provider.from_discovery({"issuer": "x"}, name="idp")


def test_oidc_explicit_endpoints_and_keycloak() -> None:
    """The generic presets."""
    explicit = Oidc.endpoints(name="g", token_url="https://g.example.com/token", scopes=("openid",))
    assert explicit.default_scopes == ("openid",)
    keycloak = Oidc.keycloak("https://kc.example.com", "demo")
    assert (
        str(keycloak.token_url)
        == "https://kc.example.com/realms/demo/protocol/openid-connect/token"
    )
