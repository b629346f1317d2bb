"""The SDK against the sandbox's Everifin: Keycloak's code flow and rotation, and BankConnect."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from aiofinaccess import (
    BearerAuth,
    ClientCredentials,
    Everifin,
    ReauthorizationRequired,
    SessionManager,
    TokenSet,
)
from aiofinaccess.errors import AuthorizationDenied, InvalidClientError, OAuthError
from aiofinaccess.oauth import ClientAuthMethod, discover
from aiofinaccess.oauth.authorization import AuthorizationRequest
from aiofinaccess.sandbox import LoginFailed, Sandbox, SandboxConfig, headless_login

REDIRECT = "http://127.0.0.1/callback"


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def connect(
    manager: SessionManager, browser: aiohttp.ClientSession, user: str = "alice", **kwargs: Any
) -> tuple[TokenSet, AuthorizationRequest, URL]:
    request = manager.authorization_request("everifin", REDIRECT, **kwargs)
    callback = await headless_login(browser, request.url, user, f"{user}-password")
    token_set = await manager.complete_authorization("everifin", user, str(callback), request)
    return token_set, request, callback


class TestCodeFlow:
    async def test_login_and_exchange(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """Callback carries code, state, session_state and iss; the exchange yields both tokens."""
        token_set, request, callback = await connect(sandbox_manager, browser)
        assert set(callback.query) == {"code", "state", "session_state", "iss"}
        assert callback.query["state"] == request.state
        assert callback.query["iss"] == sandbox.issuer
        assert token_set.refresh_token is not None
        assert token_set.refresh_expires_at is not None
        assert token_set.scope == "ais"
        assert sandbox.stats()["token_requests"]["everifin_authorization_code"] == 1

    async def test_a_code_works_once_and_its_reuse_kills_the_session(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """A reloaded callback that exchanges again fails and ends the login it made."""
        _, request, callback = await connect(sandbox_manager, browser)
        with pytest.raises(OAuthError, match="Code not valid"):
            await sandbox_manager.complete_authorization(
                "everifin", "alice", str(callback), request
            )
        assert sandbox.stats()["sessions_killed"] == 1
        with pytest.raises(ReauthorizationRequired):
            await sandbox_manager.refresh("everifin", "alice")

    async def test_pkce_is_checked(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """A wrong verifier fails with Keycloak's description."""
        request = sandbox_manager.authorization_request("everifin", REDIRECT)
        callback = await headless_login(browser, request.url, "alice", "alice-password")
        forged = AuthorizationRequest(
            request.url, request.state, request.redirect_uri, code_verifier=None
        )
        with pytest.raises(OAuthError, match="PKCE code verifier not specified"):
            await sandbox_manager.complete_authorization("everifin", "alice", str(callback), forged)

    async def test_cancel_is_access_denied(
        self, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """The login page's cancel button redirects with error=access_denied."""
        request = sandbox_manager.authorization_request("everifin", REDIRECT)
        callback = await headless_login(browser, request.url, "", "", cancel=True)
        with pytest.raises(AuthorizationDenied) as info:
            await sandbox_manager.complete_authorization(
                "everifin", "alice", str(callback), request
            )
        assert info.value.error == "access_denied"

    async def test_wrong_password_stays_on_the_page(
        self, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """Bad credentials re-render the form with an error."""
        request = sandbox_manager.authorization_request("everifin", REDIRECT)
        with pytest.raises(LoginFailed, match="invalid username or password"):
            await headless_login(browser, request.url, "alice", "wrong")

    async def test_unknown_scope_is_an_error_redirect(
        self, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """invalid_scope comes back to the app typed."""
        request = sandbox_manager.authorization_request("everifin", REDIRECT, scopes=("payments",))
        callback = await headless_login(browser, request.url, "alice", "alice-password")
        with pytest.raises(AuthorizationDenied) as info:
            await sandbox_manager.complete_authorization(
                "everifin", "alice", str(callback), request
            )
        assert info.value.error == "invalid_scope"


class TestRotation:
    async def test_every_refresh_rotates_and_a_replay_kills_the_session(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """Old refresh token: invalid_grant Stale token; then the newest fails too."""
        first, _, _ = await connect(sandbox_manager, browser)
        second = await sandbox_manager.refresh("everifin", "alice")
        third = await sandbox_manager.refresh("everifin", "alice")
        assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
        assert first.refresh_token is not None
        with pytest.raises(ReauthorizationRequired) as replay:
            await sandbox_manager.oauth("everifin").refresh(first.refresh_token)
        assert replay.value.cause is not None
        assert replay.value.cause.body.message == "Stale token"
        with pytest.raises(ReauthorizationRequired) as newest:
            await sandbox_manager.refresh("everifin", "alice")
        assert newest.value.cause is not None
        assert newest.value.cause.body.message == "Session doesn't have required client"
        stats = sandbox.stats()
        assert (stats["reuse_violations"], stats["sessions_killed"]) == (1, 1)

    async def test_concurrent_refreshes_through_the_manager_never_replay(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """100 concurrent forced refreshes share one request: no reuse violation."""
        await connect(sandbox_manager, browser)
        results = await asyncio.gather(
            *(sandbox_manager.refresh("everifin", "alice") for _ in range(100))
        )
        assert len({result.refresh_token for result in results}) == 1
        assert sandbox.stats()["token_requests"]["everifin_refresh_token"] == 1
        assert sandbox.stats()["reuse_violations"] == 0

    @pytest.mark.parametrize("sandbox_config", [SandboxConfig(sso_idle=600, sso_max=1000)])
    async def test_refresh_extends_idle_up_to_the_max(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """refresh_expires_in follows SSO idle, refreshes extend it, SSO max caps it."""
        first, _, _ = await connect(sandbox_manager, browser)
        assert first.refresh_expires_at is not None
        assert first.refresh_expires_at - first.issued_at == pytest.approx(600, abs=2)
        sandbox.advance(500)
        second = await sandbox_manager.refresh("everifin", "alice")
        assert second.refresh_expires_at is not None
        assert second.refresh_expires_at - second.issued_at == pytest.approx(
            500, abs=2
        )  # capped by max
        sandbox.advance(599)
        with pytest.raises(ReauthorizationRequired) as info:
            await sandbox_manager.refresh("everifin", "alice")
        assert info.value.cause is not None
        assert info.value.cause.body.message == "Token is not active"

    async def test_idle_session_dies_without_refreshes(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """Past SSO idle the refresh token is not active any more."""
        await connect(sandbox_manager, browser)
        sandbox.advance(sandbox.config.sso_idle + 1)
        with pytest.raises(ReauthorizationRequired, match="invalid_grant"):
            await sandbox_manager.refresh("everifin", "alice")


class TestEndSession:
    async def test_logout_then_refresh_fails(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """Logout ends the session at Keycloak; the SDK forgets the set."""
        first, _, _ = await connect(sandbox_manager, browser)
        await sandbox_manager.logout("everifin", "alice")
        assert first.refresh_token is not None
        with pytest.raises(ReauthorizationRequired, match="Session not active"):
            await sandbox_manager.oauth("everifin").refresh(first.refresh_token)

    async def test_revoke_refresh_token(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """RFC 7009 revocation of the refresh token ends the session."""
        first, _, _ = await connect(sandbox_manager, browser)
        await sandbox_manager.revoke("everifin", "alice")
        assert first.refresh_token is not None
        with pytest.raises(ReauthorizationRequired):
            await sandbox_manager.oauth("everifin").refresh(first.refresh_token)

    async def test_basic_auth_and_bad_secret(
        self, sandbox: Sandbox, browser: aiohttp.ClientSession
    ) -> None:
        """client_secret_basic works; a wrong secret is InvalidClientError."""
        config = sandbox.config
        provider = Everifin.at(
            sandbox.idp_url, sandbox.api_url, client_auth=ClientAuthMethod.CLIENT_SECRET_BASIC
        )
        async with SessionManager() as manager:
            manager.register(
                provider,
                ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
            )
            await connect(manager, browser)
            await manager.refresh("everifin", "alice")
        async with SessionManager() as manager:
            manager.register(provider, ClientCredentials(config.everifin_client_id, "wrong"))
            with pytest.raises(InvalidClientError):
                await connect(manager, browser)

    async def test_discovery_builds_an_equivalent_provider(self, sandbox: Sandbox) -> None:
        """The realm's discovery document names the same endpoints as the preset."""
        async with aiohttp.ClientSession() as session:
            discovered = await discover(session, sandbox.issuer, name="everifin")
        preset = Everifin.at(sandbox.idp_url, sandbox.api_url)
        assert discovered.token_url == preset.token_url
        assert discovered.authorization_url == preset.authorization_url
        assert discovered.logout_url == preset.logout_url
        assert discovered.issuer == preset.issuer


class TestBankConnect:
    async def _http(self, manager: SessionManager) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(middlewares=(BearerAuth(manager, "everifin", "alice"),))

    async def test_accounts_balances_transactions(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """Envelope, activation, paging and filters."""
        await connect(sandbox_manager, browser)
        base = sandbox.api_url + "/v1"
        async with await self._http(sandbox_manager) as http:
            async with http.get(base + "/accounts") as response:
                accounts = (await response.json())["data"]
            inactive = next(a for a in accounts if not a["active"])
            async with http.get(f"{base}/accounts/{inactive['id']}/balances") as response:
                assert response.status == 409
                assert (await response.json())["errors"][0]["code"] == "ACCOUNT_NOT_ACTIVE"
            async with http.post(
                base + "/accounts/activate", json={"accountIds": [inactive["id"]]}
            ) as response:
                assert response.status == 200
            async with http.get(f"{base}/accounts/{inactive['id']}/balances") as response:
                assert {b["type"] for b in (await response.json())["data"]} == {"CLBD", "CLAV"}
            seen: list[dict[str, Any]] = []
            url: str | None = f"{base}/accounts/{accounts[0]['id']}/transactions?countPerPage=50"
            while url:
                async with http.get(url) as response:
                    page = await response.json()
                seen += page["data"]
                url = page["meta"]["pagination"]["nextPageUrl"]
            assert (
                len(seen) == len({t["id"] for t in seen}) == sandbox.config.transactions_per_account
            )
            cutoff = seen[-10]["lastUpdated"]
            async with http.get(
                f"{base}/accounts/{accounts[0]['id']}/transactions", params={"updatedFrom": cutoff}
            ) as response:
                assert len((await response.json())["data"]) == 10
            async with http.get(f"{base}/transactions/{seen[0]['id']}") as response:
                assert (await response.json())["data"] == seen[0]

    async def test_data_is_deterministic_per_user(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """The same user sees the same data; the sandbox generates it once."""
        await connect(sandbox_manager, browser)
        async with (
            await self._http(sandbox_manager) as http,
            http.get(sandbox.api_url + "/v1/accounts") as response,
        ):
            first = await response.json()
        bankconnect = sandbox.service("bankconnect")
        regenerated = bankconnect._generate("alice")
        assert [a["iban"] for a in regenerated.accounts] == [a["iban"] for a in first["data"]]

    async def test_expired_token_is_401_and_the_middleware_recovers(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """The sandbox expires the token; BearerAuth refreshes once and the call succeeds."""
        await connect(sandbox_manager, browser)
        sandbox.advance(sandbox.config.keycloak_access_ttl + 1)
        async with (
            await self._http(sandbox_manager) as http,
            http.get(sandbox.api_url + "/v1/accounts") as response,
        ):
            assert response.status == 200
        stats = sandbox.stats()
        assert stats["api_calls"]["401"] == 1
        assert stats["token_requests"]["everifin_refresh_token"] == 1

    async def test_refresh_adds_and_updates_transactions(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
    ) -> None:
        """A transaction refresh creates new items and corrects an old one (incremental sync)."""
        await connect(sandbox_manager, browser)
        base = sandbox.api_url + "/v1"
        sandbox.advance(60)
        async with await self._http(sandbox_manager) as http:
            async with http.get(base + "/accounts") as response:
                account = (await response.json())["data"][0]["id"]
            async with http.post(base + "/transactions/refresh") as response:
                assert account in (await response.json())["data"]["refreshedAccounts"]
            moment = dt.datetime.fromtimestamp(sandbox.state.clock.now() - 30, tz=dt.UTC)
            since = moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            async with http.get(
                f"{base}/accounts/{account}/transactions", params={"updatedFrom": since}
            ) as response:
                changed = (await response.json())["data"]
            async with http.get(
                f"{base}/accounts/{account}/transactions", params={"createdFrom": since}
            ) as response:
                created = (await response.json())["data"]
        assert len(changed) == 4
        assert len(created) == 3
