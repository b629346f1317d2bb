"""The SDK against the sandbox's finAPI Access: every grant, revocation, the users API.

These are integration tests over real HTTP on 127.0.0.1; the users endpoints are called with
plain aiohttp (the users module builds on them later).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiofinaccess import (
    ApiError,
    ClientCredentials,
    FinApi,
    ReauthorizationRequired,
    Secret,
    SessionManager,
)
from aiofinaccess.errors import InvalidClientError
from aiofinaccess.sandbox import Sandbox, SandboxConfig

PASSWORD = "user-password-1"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    method: str,
    path: str,
    token: str | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, sandbox.base_url + path, headers=headers, **kwargs) as response:
        text = await response.text()
        body = (
            await response.json() if text and response.content_type == "application/json" else text
        )
        return response.status, body


async def create_user(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    manager: SessionManager,
    user_id: str = "alice",
    **fields: Any,
) -> tuple[int, Any]:
    client = await manager.access_token("finapi")
    return await call(
        http,
        sandbox,
        "POST",
        "/api/v2/users",
        client,
        json={"id": user_id, "password": PASSWORD, **fields},
    )


class TestGrants:
    async def test_client_token_is_the_same_until_it_expires(
        self, sandbox: Sandbox, sandbox_manager: SessionManager
    ) -> None:
        """finAPI returns the same client token, with what is left of its lifetime."""
        oauth = sandbox_manager.oauth("finapi")
        first = await oauth.client_credentials()
        sandbox.advance(1000)
        second = await oauth.client_credentials()
        assert first.access_token == second.access_token
        assert second.lifetime is not None
        assert second.lifetime <= 2600
        assert first.refresh_token is None
        sandbox.advance(3000)
        assert (await oauth.client_credentials()).access_token != first.access_token

    async def test_password_then_refresh_keeps_the_refresh_token(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """Refresh works for user tokens; no new refresh token comes, so the SDK keeps the old."""
        await create_user(http, sandbox, sandbox_manager)
        first = await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        renewed = await sandbox_manager.refresh("finapi", "alice")
        assert renewed.access_token != first.access_token
        assert renewed.refresh_token == first.refresh_token
        stats = sandbox.stats()["token_requests"]
        assert stats["finapi_password"] == 1
        assert stats["finapi_refresh_token"] == 1

    async def test_never_expiring_tokens(
        self, sandbox: Sandbox, sandbox_manager: SessionManager
    ) -> None:
        """TTL 0 is expires_in 0, which the SDK reads as never."""
        sandbox.config.finapi_client_token_ttl = 0
        token_set = await sandbox_manager.oauth("finapi").client_credentials()
        assert token_set.expires_at is None

    async def test_bad_client_is_invalid_client(self, sandbox: Sandbox) -> None:
        """401 for wrong client credentials, typed."""
        async with SessionManager() as manager:
            manager.register(
                FinApi.at(sandbox.base_url), ClientCredentials("finapi-sandbox-client", "wrong")
            )
            with pytest.raises(InvalidClientError):
                await manager.access_token("finapi")

    async def test_bad_user_password(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """400 in finAPI's ErrorMessage shape (as the v1 spec documents) for wrong credentials."""
        await create_user(http, sandbox, sandbox_manager)
        with pytest.raises(ApiError) as info:
            await sandbox_manager.login_with_password("finapi", "alice", "wrong-password")
        assert info.value.status == 400
        assert info.value.code == "BAD_REQUEST"

    async def test_locked_user_is_423(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """After maxUserLoginAttempts failures the token endpoint answers 423 LOCKED."""
        await create_user(http, sandbox, sandbox_manager)
        for _ in range(sandbox.config.finapi_max_login_attempts):
            with pytest.raises(ApiError):
                await sandbox_manager.login_with_password("finapi", "alice", "wrong-password")
        with pytest.raises(ApiError) as info:
            await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        assert info.value.status == 423
        assert info.value.code == "LOCKED"

    @pytest.mark.parametrize("sandbox_config", [SandboxConfig(finapi_auto_verify_users=False)])
    async def test_unverified_user_is_403_until_verified(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """Without auto-verification the password grant waits for POST /users/verify."""
        await create_user(http, sandbox, sandbox_manager)
        with pytest.raises(ApiError) as info:
            await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        assert info.value.status == 403
        client = await sandbox_manager.access_token("finapi")
        status, body = await call(
            http, sandbox, "GET", "/api/v2/users/verificationStatus?userId=alice", client
        )
        assert (status, body) == (200, {"userId": "alice", "isUserVerified": False})
        assert (await call(http, sandbox, "POST", "/api/v2/users/verify/alice", client))[0] == 200
        assert (await call(http, sandbox, "POST", "/api/v2/users/verify/alice", client))[1][
            "errors"
        ][0]["code"] == ("USER_ALREADY_VERIFIED")
        await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)

    async def test_refresh_grant_is_for_users_only(
        self, sandbox: Sandbox, sandbox_manager: SessionManager
    ) -> None:
        """A client token has no refresh token; an unknown refresh token is invalid_grant."""
        with pytest.raises(ReauthorizationRequired):
            await sandbox_manager.oauth("finapi").refresh(Secret("not-a-refresh-token"))

    async def test_form_body_only(self, sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        """JSON bodies are refused at the token endpoint."""
        config = sandbox.config
        status, body = await call(
            http,
            sandbox,
            "POST",
            "/api/v2/oauth/token",
            json={"grant_type": "client_credentials", "client_id": config.finapi_client_id},
        )
        assert status == 400
        assert body["errors"][0]["code"] == "BAD_REQUEST"


class TestRevocation:
    async def test_revoking_the_refresh_token_ends_the_grant(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """hint=refresh_token ends it and its access tokens; the SDK forgets the set."""
        await create_user(http, sandbox, sandbox_manager)
        token_set = await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        access = token_set.access_token.reveal()
        await sandbox_manager.revoke("finapi", "alice")
        assert (await call(http, sandbox, "GET", "/api/v2/users", access))[0] == 401
        assert token_set.refresh_token is not None
        with pytest.raises(ReauthorizationRequired):
            await sandbox_manager.oauth("finapi").refresh(token_set.refresh_token)
        with pytest.raises(ReauthorizationRequired, match="revoked"):
            await sandbox_manager.access_token("finapi", "alice")

    async def test_access_token_hint_keeps_the_refresh_token(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """hint=access_token: only that access token dies; unknown tokens still get 200."""
        await create_user(http, sandbox, sandbox_manager)
        token_set = await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        oauth = sandbox_manager.oauth("finapi")
        client = Secret(await sandbox_manager.access_token("finapi"))
        await oauth.revoke(token_set.access_token, hint="access_token", client_bearer=client)
        await oauth.revoke(Secret("unknown-token"), client_bearer=client)
        assert (await call(http, sandbox, "GET", "/api/v2/users", token_set.access_token.reveal()))[
            0
        ] == 401
        assert token_set.refresh_token is not None
        assert (await oauth.refresh(token_set.refresh_token)).access_token != token_set.access_token

    async def test_revocation_needs_the_client_token(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """A user token cannot authorise revocation (403)."""
        await create_user(http, sandbox, sandbox_manager)
        token_set = await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        with pytest.raises(ApiError) as info:
            await sandbox_manager.oauth("finapi").revoke(
                token_set.access_token, client_bearer=token_set.access_token
            )
        assert info.value.status == 403


class TestUsers:
    async def test_create_get_edit_delete(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """The user's own view: password shown once at creation, then masked."""
        status, created = await create_user(http, sandbox, sandbox_manager, email="a@example.com")
        assert status == 201
        assert created["password"] == PASSWORD
        await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        user = await sandbox_manager.access_token("finapi", "alice")
        status, body = await call(http, sandbox, "GET", "/api/v2/users", user)
        assert (status, body["password"], body["email"]) == (200, "XXXXX", "a@example.com")
        status, body = await call(
            http, sandbox, "PATCH", "/api/v2/users", user, json={"email": "", "phone": "+421"}
        )
        assert (status, body["email"], body["phone"]) == (200, None, "+421")
        assert (await call(http, sandbox, "PATCH", "/api/v2/users", user, json={}))[0] == 400
        assert (await call(http, sandbox, "DELETE", "/api/v2/users", user))[0] == 200
        assert (await call(http, sandbox, "GET", "/api/v2/users", user))[0] == 401

    async def test_duplicate_id_is_422_entity_exists(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """Ids are case-insensitive; a taken one is 422 ENTITY_EXISTS, not 409."""
        await create_user(http, sandbox, sandbox_manager, "Alice")
        status, body = await create_user(http, sandbox, sandbox_manager, "alice")
        assert status == 422
        assert body["errors"][0]["code"] == "ENTITY_EXISTS"
        assert body["requestId"]

    @pytest.mark.parametrize(
        "fields",
        [
            {"id": "bad id!"},
            {"id": "x" * 37},
            {"password": "short"},
            {"email": ""},
            {"isAutoUpdateEnabled": "yes"},
        ],
    )
    async def test_limits_are_validated(
        self,
        sandbox: Sandbox,
        sandbox_manager: SessionManager,
        http: aiohttp.ClientSession,
        fields: dict[str, Any],
    ) -> None:
        """finAPI's limits on id, password, email and flags."""
        client = await sandbox_manager.access_token("finapi")
        body = {"id": "valid-id", "password": PASSWORD, **fields}
        status, answer = await call(http, sandbox, "POST", "/api/v2/users", client, json=body)
        assert status == 400
        assert answer["errors"][0]["code"] == "BAD_REQUEST"

    async def test_wrong_token_kind_is_403(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """Creating users needs the client token; reading one needs the user's."""
        await create_user(http, sandbox, sandbox_manager)
        await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        user = await sandbox_manager.access_token("finapi", "alice")
        client = await sandbox_manager.access_token("finapi")
        assert (await call(http, sandbox, "POST", "/api/v2/users", user, json={}))[0] == 403
        status, body = await call(http, sandbox, "GET", "/api/v2/users", client)
        assert status == 403
        assert body["errors"][0]["code"] == "UNAUTHORIZED_ACCESS"

    async def test_password_change_revokes_every_token(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """Request, execute, and the old tokens are gone; the new password works."""
        await create_user(http, sandbox, sandbox_manager)
        old = await sandbox_manager.login_with_password("finapi", "alice", PASSWORD)
        client = await sandbox_manager.access_token("finapi")
        status, change = await call(
            http,
            sandbox,
            "POST",
            "/api/v2/users/requestPasswordChange",
            client,
            json={"userId": "alice"},
        )
        assert status == 200
        bad = {"userId": "alice", "password": "new-password-1", "passwordChangeToken": "0" * 32}
        assert (
            await call(
                http, sandbox, "POST", "/api/v2/users/executePasswordChange", client, json=bad
            )
        )[0] == 400
        good = {**bad, "passwordChangeToken": change["passwordChangeToken"]}
        assert (
            await call(
                http, sandbox, "POST", "/api/v2/users/executePasswordChange", client, json=good
            )
        )[0] == 200
        assert (await call(http, sandbox, "GET", "/api/v2/users", old.access_token.reveal()))[
            0
        ] == 401
        await sandbox_manager.login_with_password("finapi", "alice", "new-password-1")

    async def test_delete_unverified_and_not_found(
        self, sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
    ) -> None:
        """A verified user cannot be deleted by the client; unknown users are 404."""
        await create_user(http, sandbox, sandbox_manager)
        client = await sandbox_manager.access_token("finapi")
        status, body = await call(http, sandbox, "DELETE", "/api/v2/users/alice", client)
        assert (status, body["errors"][0]["code"]) == (422, "USER_ALREADY_VERIFIED")
        status, body = await call(http, sandbox, "DELETE", "/api/v2/users/nobody", client)
        assert (status, body["errors"][0]["code"]) == (404, "UNKNOWN_ENTITY")


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(finapi_version="v1")])
async def test_v1_mode(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    """v1: token at /oauth/token, revocation by query, users under /api/v1; v2 is a mismatch."""
    config = sandbox.config
    async with SessionManager() as manager:
        manager.register(
            FinApi.at(sandbox.base_url, api_version="v1"),
            ClientCredentials(config.finapi_client_id, config.finapi_client_secret),
        )
        client = await manager.access_token("finapi")
        status, _ = await call(
            http,
            sandbox,
            "POST",
            "/api/v1/users",
            client,
            json={"id": "v1user", "password": PASSWORD},
        )
        assert status == 201
        await manager.login_with_password("finapi", "v1user", PASSWORD)
        await manager.revoke("finapi", "v1user")
        status, body = await call(http, sandbox, "POST", "/api/v2/users", client, json={})
        assert status == 403
        assert "mismatch" in body["errors"][0]["message"]
        status, body = await call(
            http, sandbox, "POST", "/api/v1/users", client, json={"id": "v1user"}
        )
        assert (status, body["errors"][0]["code"]) == (422, "ENTITY_EXISTS")
        assert " " in body["date"]  # v1's date format has no 'T'
