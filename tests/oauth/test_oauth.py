"""Tests for aiofinaccess.oauth.client: what each grant sends, and how answers are read.

The token endpoint is mocked with aioresponses; tests/oauth/test_transport.py covers the network
failure modes against a real local server.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from aiofinaccess import (
    ApiError,
    ClientCredentials,
    Everifin,
    FinApi,
    Oidc,
    Provider,
    ReauthorizationRequired,
    Secret,
)
from aiofinaccess.errors import (
    ConfigurationError,
    InvalidClientError,
    OAuthError,
    TokenResponseError,
)
from aiofinaccess.oauth import ClientAuthMethod, OAuthClient, discover
from tests.support.fakes import FakeClock
from tests.support.tokens import token_body

CLIENT = ClientCredentials("my-client", "my-secret")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _client(provider: Provider, session: aiohttp.ClientSession) -> OAuthClient:
    return OAuthClient(provider, CLIENT, session, clock=FakeClock())


def _sent(
    mocked: aioresponses, url: URL | str, method: str = "POST", index: int = 0
) -> dict[str, Any]:
    call = mocked.requests[(method, URL(str(url)))][index]
    return call.kwargs  # type: ignore[no-any-return]


def _form(mocked: aioresponses, url: URL | str, index: int = 0) -> dict[str, str]:
    return dict(_sent(mocked, url, index=index)["data"])


class TestGrants:
    async def test_client_credentials_finapi(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """Form body with client id and secret; finAPI's never-expiring 0 is honoured."""
        provider = FinApi.sandbox()
        mocked.post(str(provider.token_url), payload=token_body(refresh=None, expires_in=0))
        token_set = await _client(provider, session).client_credentials()
        assert token_set.expires_at is None
        assert _form(mocked, provider.token_url) == {
            "grant_type": "client_credentials",
            "client_id": "my-client",
            "client_secret": "my-secret",
        }
        headers = _sent(mocked, provider.token_url)["headers"]
        assert headers["X-Request-Id"]
        assert _sent(mocked, provider.token_url)["middlewares"] == ()

    async def test_password(self, mocked: aioresponses, session: aiohttp.ClientSession) -> None:
        """Username and password in the form, next to the client credentials."""
        provider = FinApi.sandbox()
        mocked.post(str(provider.token_url), payload=token_body())
        token_set = await _client(provider, session).password("alice", Secret("pw-123456"))
        assert token_set.refresh_token == Secret("RT-1")
        form = _form(mocked, provider.token_url)
        assert form["grant_type"] == "password"
        assert form["username"] == "alice"
        assert form["password"] == "pw-123456"
        assert form["client_secret"] == "my-secret"

    async def test_refresh(self, mocked: aioresponses, session: aiohttp.ClientSession) -> None:
        """refresh_token grant; Keycloak's refresh_expires_in is read."""
        provider = Everifin.stage()
        mocked.post(
            str(provider.token_url), payload=token_body("AT-2", "RT-2", refresh_expires_in=1800)
        )
        token_set = await _client(provider, session).refresh(Secret("RT-1"))
        assert token_set.refresh_token == Secret("RT-2")
        assert token_set.refresh_expires_at is not None
        form = _form(mocked, provider.token_url)
        assert form["grant_type"] == "refresh_token"
        assert form["refresh_token"] == "RT-1"
        assert "scope" not in form

    async def test_authorization_code_with_pkce(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """code, redirect_uri and code_verifier are sent."""
        provider = Everifin.stage()
        mocked.post(str(provider.token_url), payload=token_body())
        await _client(provider, session).authorization_code(
            "the-code", "https://app/cb", code_verifier=Secret("v" * 43)
        )
        form = _form(mocked, provider.token_url)
        assert form["grant_type"] == "authorization_code"
        assert form["code"] == "the-code"
        assert form["redirect_uri"] == "https://app/cb"
        assert form["code_verifier"] == "v" * 43

    async def test_client_secret_basic(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """RFC 6749 2.3.1: form-encode each part, then Base64; nothing in the form."""
        provider = Oidc.endpoints(
            name="idp",
            token_url="https://idp.example.com/token",
            client_auth=ClientAuthMethod.CLIENT_SECRET_BASIC,
        )
        client = OAuthClient(provider, ClientCredentials("id:1", "s&cret"), session)
        mocked.post(str(provider.token_url), payload=token_body())
        await client.client_credentials(scopes=["a", "b"])
        form = _form(mocked, provider.token_url)
        assert form == {"grant_type": "client_credentials", "scope": "a b"}
        header = _sent(mocked, provider.token_url)["headers"]["Authorization"]
        assert base64.b64decode(header.removeprefix("Basic ")).decode() == "id%3A1:s%26cret"


class TestErrors:
    async def test_invalid_grant_on_refresh_is_reauthorization(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """Decided by the code, whatever the description says."""
        provider = Everifin.stage()
        mocked.post(
            str(provider.token_url),
            status=400,
            payload={"error": "invalid_grant", "error_description": "anything"},
        )
        with pytest.raises(ReauthorizationRequired) as info:
            await _client(provider, session).refresh(Secret("RT"))
        assert info.value.cause is not None
        assert info.value.cause.status == 400

    async def test_finapi_400_on_refresh_is_reauthorization(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """finAPI refuses a refresh token with 400 in its own shape: the grant is dead."""
        provider = FinApi.sandbox()
        mocked.post(
            str(provider.token_url),
            status=400,
            payload={"errors": [{"code": "BAD_REQUEST", "message": "Invalid refresh token"}]},
        )
        with pytest.raises(ReauthorizationRequired) as info:
            await _client(provider, session).refresh(Secret("RT"))
        assert info.value.reason == "BAD_REQUEST"

    async def test_a_500_on_refresh_is_not_reauthorization(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """Server errors are transient, whatever the provider."""
        provider = FinApi.sandbox()
        mocked.post(
            str(provider.token_url), status=500, payload={"errors": [{"code": "UNEXPECTED_ERROR"}]}
        )
        with pytest.raises(ApiError) as info:
            await _client(provider, session).refresh(Secret("RT"))
        assert not isinstance(info.value, ReauthorizationRequired)
        assert info.value.retryable

    async def test_other_oauth_errors_on_refresh_stay_oauth_errors(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """invalid_request is a bug, not a dead grant."""
        provider = Everifin.stage()
        mocked.post(str(provider.token_url), status=400, payload={"error": "invalid_request"})
        with pytest.raises(OAuthError) as info:
            await _client(provider, session).refresh(Secret("RT"))
        assert not isinstance(info.value, ReauthorizationRequired)

    async def test_bad_client_is_invalid_client(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """finAPI answers 401 for bad client credentials."""
        provider = FinApi.sandbox()
        mocked.post(
            str(provider.token_url),
            status=401,
            payload={"error": "unauthorized", "error_description": "Bad credentials"},
            headers={"X-Request-Id": "rid-1"},
        )
        with pytest.raises(InvalidClientError) as info:
            await _client(provider, session).client_credentials()
        assert info.value.request_id == "rid-1"

    async def test_finapi_shaped_400_is_an_api_error(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """The token endpoint may answer in finAPI's own shape."""
        provider = FinApi.sandbox()
        mocked.post(
            str(provider.token_url),
            status=423,
            payload={"errors": [{"code": "LOCKED", "message": "User locked", "type": "BUSINESS"}]},
        )
        with pytest.raises(ApiError) as info:
            await _client(provider, session).password("alice", Secret("pw"))
        assert info.value.status == 423
        assert info.value.code == "LOCKED"

    @pytest.mark.parametrize(
        ("body", "content_type"),
        [
            ("<html>maintenance</html>", "text/html"),
            ('{"token_type": "bearer"}', "application/json"),
            ('{"access', "application/json"),
        ],
    )
    async def test_unusable_2xx_is_a_token_response_error(
        self, mocked: aioresponses, session: aiohttp.ClientSession, body: str, content_type: str
    ) -> None:
        """HTML, truncated JSON or no access_token."""
        provider = FinApi.sandbox()
        mocked.post(str(provider.token_url), body=body, content_type=content_type)
        with pytest.raises(TokenResponseError):
            await _client(provider, session).client_credentials()


class TestRevocationAndLogout:
    async def test_finapi_v2_form_with_client_bearer(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """finAPI v2: form body, the client's token as bearer."""
        provider = FinApi.sandbox()
        mocked.post(str(provider.revocation_url), status=200)
        await _client(provider, session).revoke(
            Secret("RT"), hint="refresh_token", client_bearer=Secret("CT")
        )
        sent = _sent(mocked, str(provider.revocation_url))
        assert dict(sent["data"]) == {"token": "RT", "token_type_hint": "refresh_token"}
        assert sent["headers"]["Authorization"] == "Bearer CT"

    async def test_finapi_v1_query_with_client_bearer(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """finAPI v1: query parameters."""
        provider = FinApi.sandbox(api_version="v1")
        url = provider.revocation_url
        assert url is not None
        mocked.post(str(url.with_query(token="AT", token_type_hint="access_token")), status=200)
        await _client(provider, session).revoke(
            Secret("AT"), hint="access_token", client_bearer=Secret("CT")
        )
        sent = _sent(mocked, url.with_query(token="AT", token_type_hint="access_token"))
        assert sent["data"] is None

    async def test_finapi_needs_a_client_bearer(self, session: aiohttp.ClientSession) -> None:
        """A usage problem is caught before anything is sent."""
        with pytest.raises(ConfigurationError, match="client access token"):
            await _client(FinApi.sandbox(), session).revoke(Secret("RT"))

    async def test_keycloak_rfc7009_and_logout(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """Keycloak: client authenticates in the form for revoke and logout."""
        provider = Everifin.stage()
        mocked.post(str(provider.revocation_url), status=200)
        mocked.post(str(provider.logout_url), status=204)
        client = _client(provider, session)
        await client.revoke(Secret("RT"), hint="refresh_token")
        await client.logout(Secret("RT"))
        assert dict(_sent(mocked, str(provider.revocation_url))["data"]) == {
            "token": "RT",
            "token_type_hint": "refresh_token",
            "client_id": "my-client",
            "client_secret": "my-secret",
        }
        assert dict(_sent(mocked, str(provider.logout_url))["data"])["refresh_token"] == "RT"

    async def test_failed_revocation_is_typed(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """finAPI: 400 for a token type that cannot be revoked."""
        provider = Everifin.stage()
        mocked.post(
            str(provider.revocation_url), status=400, payload={"error": "unsupported_token_type"}
        )
        with pytest.raises(OAuthError, match="unsupported_token_type"):
            await _client(provider, session).revoke(Secret("x"))


class TestDiscover:
    async def test_builds_a_provider(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """The generic OIDC provider from a discovery document."""
        issuer = "https://idp.example.com/realms/demo"
        mocked.get(
            issuer + "/.well-known/openid-configuration",
            payload={
                "issuer": issuer,
                "token_endpoint": issuer + "/token",
                "authorization_endpoint": issuer + "/auth",
            },
        )
        provider = await discover(session, issuer, name="demo")
        assert str(provider.token_url) == issuer + "/token"
        assert provider.issuer == issuer

    async def test_missing_document_is_a_configuration_error(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """A wrong realm is reported at set-up, naming both places that were tried."""
        mocked.get(
            "https://idp.example.com/realms/nope/.well-known/openid-configuration", status=404
        )
        mocked.get(
            "https://idp.example.com/.well-known/oauth-authorization-server/realms/nope",
            status=404,
        )
        with pytest.raises(ConfigurationError, match="404") as info:
            await discover(session, "https://idp.example.com/realms/nope", name="x")
        assert "oauth-authorization-server/realms/nope answered HTTP 404" in str(info.value)

    async def test_a_server_error_is_not_taken_for_a_missing_document(
        self, mocked: aioresponses, session: aiohttp.ClientSession
    ) -> None:
        """A 503 on the OIDC document stops there: RFC 8414 is tried only after a 4xx."""
        mocked.get("https://idp.example.com/realms/r/.well-known/openid-configuration", status=503)
        with pytest.raises(ConfigurationError, match="HTTP 503"):
            await discover(session, "https://idp.example.com/realms/r", name="x")
