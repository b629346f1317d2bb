"""Durability with real parts: SQLite files, a restart, and Keycloak sessions kept alive.

The sandbox runs in this process; the SDK talks to it over HTTP on 127.0.0.1 with real time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from aiofinaccess import ReauthorizationRequired, Schedule, SessionManager, SQLiteStore
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox, SandboxConfig, headless_login

USERS = [f"user-{n}" for n in range(20)]


def _register(manager: SessionManager, sandbox: Sandbox) -> None:
    for provider, credentials in sandbox_providers(sandbox):
        manager.register(provider, credentials)


async def connect_users(manager: SessionManager, sandbox: Sandbox, users: list[str]) -> None:
    for user in users:
        sandbox.config.everifin_users[user] = f"{user}-password"
        request = manager.authorization_request("everifin", "http://127.0.0.1/callback")
        async with aiohttp.ClientSession() as browser:
            callback = await headless_login(browser, request.url, user, f"{user}-password")
        await manager.complete_authorization("everifin", user, str(callback), request)


async def test_a_restarted_manager_continues_every_session(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Close the manager, open a new one on the same SQLite file: nothing needs re-authorizing."""
    path = tmp_path / "tokens.db"
    async with SessionManager(store=SQLiteStore(path)) as first:
        _register(first, sandbox)
        await connect_users(first, sandbox, USERS)
        await first.access_token("finapi")
        before = {user: (await first.token_set("everifin", user)).refresh_token for user in USERS}
    async with SessionManager(store=SQLiteStore(path)) as second:
        _register(second, sandbox)
        await second.ready()
        # SQLite keeps the refresh duty: start() loaded no set; each loads when first used.
        assert len(second._registry) == 0
        for user in USERS:
            restored = await second.token_set("everifin", user)
            assert restored.refresh_token == before[user]
            renewed = await second.refresh("everifin", user)
            assert renewed.refresh_token != before[user]
        await second.access_token("finapi")
    stats = sandbox.stats()
    assert stats["reuse_violations"] == 0
    assert stats["sessions_killed"] == 0
    assert stats["token_requests"]["everifin_refresh_token"] == len(USERS)
    assert stats["token_requests"]["finapi_client_credentials"] == 1  # restored, not re-fetched


@pytest.mark.parametrize(
    "sandbox_config", [SandboxConfig(sso_idle=2.0, keycloak_access_ttl=60.0)], ids=["sso_idle=2s"]
)
async def test_the_scheduler_keeps_an_idle_session_alive(sandbox: Sandbox, tmp_path: Path) -> None:
    """With keep_alive the scheduler refreshes before SSO idle ends; without it the session dies."""
    async with SessionManager(
        store=SQLiteStore(tmp_path / "kept.db"), schedule=Schedule(keep_alive=True)
    ) as kept:
        _register(kept, sandbox)
        await connect_users(kept, sandbox, ["kept"])
        await asyncio.sleep(5)  # 2.5 SSO-idle periods without a single request by the app
        renewed = await kept.refresh("everifin", "kept")
        assert renewed.refresh_token is not None
        keep_alive_refreshes = sandbox.stats()["token_requests"]["everifin_refresh_token"]
        assert keep_alive_refreshes >= 3
    async with SessionManager(store=SQLiteStore(tmp_path / "idle.db")) as idle:
        _register(idle, sandbox)
        await connect_users(idle, sandbox, ["idle"])
        await asyncio.sleep(2.5)
        refreshes = sandbox.stats()["token_requests"]["everifin_refresh_token"]
        with pytest.raises(ReauthorizationRequired) as info:
            await idle.refresh("everifin", "idle")
        # The stored set says when its refresh token died: no request is spent to learn it.
        assert info.value.reason == "refresh_token_unavailable"
        assert sandbox.stats()["token_requests"]["everifin_refresh_token"] == refreshes
