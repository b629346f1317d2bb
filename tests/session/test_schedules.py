"""The broken schedules of issue 11, each reproduced with real parts (sandbox, SQLite, real time).

Every test here failed on the code before the fix (the token core's pure renewal step, fenced
leases and pending writes); each docstring says what went wrong then.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, closing
from pathlib import Path
from typing import Any

import pytest

from aiofinaccess import (
    ClientCredentials,
    Limits,
    Oidc,
    Schedule,
    SessionManager,
    SQLiteStore,
    Timeouts,
    TokenKey,
)
from aiofinaccess.core.tokens import Anchor, TokenSet, parse_token_response
from aiofinaccess.errors import InvalidClientError
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.session.events import WriteAbandoned
from aiofinaccess.stores import Versioned
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fake_provider import CLIENT_ID, CLIENT_SECRET, OIDC, running_provider


def register(manager: SessionManager, sandbox: Sandbox) -> None:
    for provider, credentials in sandbox_providers(sandbox):
        manager.register(provider, credentials)


def seeded(sandbox: Sandbox, user: str, *, age: float = 0.0) -> TokenSet:
    """A fresh Keycloak session for ``user``, as a token set issued ``age`` seconds ago."""
    body = sandbox.service("keycloak").seed_session(user)
    return parse_token_response(body, sent=Anchor(time.time() - age, time.monotonic() - age))


class SlowOrFlakyStore:
    """A store in front of another whose writes can fail or take long, on demand."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failing_puts = 0
        self.put_delay = 0.0
        self.puts = 0

    async def get(self, key: TokenKey) -> Versioned | None:
        result: Versioned | None = await self.inner.get(key)
        return result

    async def put(self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None) -> int:
        self.puts += 1
        if self.failing_puts > 0:
            self.failing_puts -= 1
            raise OSError("disk full")
        if self.put_delay:
            await asyncio.sleep(self.put_delay)
        version: int = await self.inner.put(key, token_set, expected_version=expected_version)
        return version

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        deleted: bool = await self.inner.delete(key, expected_version=expected_version)
        return deleted

    def lease(self, key: TokenKey, *, ttl: float) -> AbstractAsyncContextManager[Any]:
        lease: AbstractAsyncContextManager[Any] = self.inner.lease(key, ttl=ttl)
        return lease

    def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        keys: AsyncIterator[TokenKey] = self.inner.keys(provider)
        return keys

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- 1. a lease that lapses while its holder still renews ---------------------------------------


@pytest.mark.parametrize(
    "sandbox_config", [SandboxConfig(keycloak_access_ttl=600.0)], ids=["latency=1.6s"]
)
async def test_a_lease_never_lapses_while_its_holder_redeems(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Two managers on one SQLite file, lease_ttl=3, token_timeout=2, a provider answering in
    1.6 s, one refresh slot: the second user's lease lapsed while its holder waited for the slot,
    the other manager took it and replayed the refresh token (one reuse violation, a session
    killed)."""
    path = tmp_path / "tokens.db"
    settings: dict[str, Any] = {
        "timeouts": Timeouts(lease=3.0, token=2.0),
        "limits": Limits(concurrent_refreshes=1),
        "schedule": Schedule(enabled=False),
    }
    async with (
        SessionManager(store=SQLiteStore(path), **settings) as first,
        SessionManager(store=SQLiteStore(path), **settings) as second,
    ):
        register(first, sandbox)
        register(second, sandbox)
        for user in ("alice", "bob"):
            await first.store_token_set("everifin", user, seeded(sandbox, user))
            await second.token_set("everifin", user)  # both hold the same version
        sandbox.set_faults(latency=1.6, scope="token")
        results = await asyncio.gather(
            *(
                manager.refresh("everifin", user)
                for manager in (first, second)
                for user in ("alice", "bob")
            ),
            return_exceptions=True,
        )
        sandbox.set_faults()
        assert [r for r in results if isinstance(r, BaseException)] == []
        for user in ("alice", "bob"):
            assert await first.access_token("everifin", user)
    stats = sandbox.stats()
    assert stats["reuse_violations"] == 0
    assert stats["sessions_killed"] == 0
    assert stats["token_requests"]["everifin_refresh_token"] == 2


@pytest.mark.parametrize(
    "sandbox_config", [SandboxConfig(keycloak_access_ttl=600.0)], ids=["latency=1s"]
)
async def test_a_dead_grant_with_a_newer_set_stored_is_adopted_not_poisoned(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The stored grant was dead, and while its refresh token was being redeemed another process
    stored a new login: deleting the dead set lost its version check, the error was swallowed
    and the process was poisoned although the store held a good set."""
    path = tmp_path / "tokens.db"
    async with (
        SessionManager(store=SQLiteStore(path), schedule=Schedule(enabled=False)) as stale,
        SessionManager(store=SQLiteStore(path), schedule=Schedule(enabled=False)) as other,
    ):
        register(stale, sandbox)
        register(other, sandbox)
        await stale.store_token_set("everifin", "alice", seeded(sandbox, "alice"))
        for session in sandbox.service("keycloak").sessions.values():
            session.active = False  # the user ended the bank session: the stored grant is dead
        sandbox.set_faults(latency=1.0, scope="token")
        renewal = asyncio.ensure_future(stale.refresh("everifin", "alice"))
        await asyncio.sleep(0.3)
        fresh_login = seeded(sandbox, "alice")
        await other.store_token_set("everifin", "alice", fresh_login)
        renewed = await renewal  # its own grant was dead, but the store holds a good set
        assert renewed.access_token == fresh_login.access_token
        sandbox.set_faults()
        token = await stale.access_token("everifin", "alice")
        assert token == fresh_login.access_token.reveal()


# -- 2. an expired set from a durable store ------------------------------------------------------


async def test_an_expired_stored_set_is_renewed_not_served(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A set another worker stored 400 s ago that expired 100 s ago was served as valid with
    zero token requests: sets read from a store carried no anchor and were planned as issued
    now."""
    path = tmp_path / "tokens.db"
    old = seeded(sandbox, "alice", age=400.0)  # Keycloak's 300 s access token: expired 100 s ago
    async with SQLiteStore(path) as store:
        await store.put(TokenKey("everifin", "alice"), old, expected_version=None)
    async with SessionManager(store=SQLiteStore(path)) as manager:
        register(manager, sandbox)
        token = await manager.access_token("everifin", "alice")
        assert token != old.access_token.reveal()
        assert manager.stats.token_requests == 1
    assert sandbox.stats()["token_requests"]["everifin_refresh_token"] == 1


# -- 3. a 401 on a reissued finAPI client token --------------------------------------------------


async def test_a_rejected_reissued_client_token_is_renewed_at_once(sandbox: Sandbox) -> None:
    """finAPI reissues its client token until it expires, so the manager would not renew it
    before expiry; after a 401 it slept until then (an hour), holding the lease."""
    async with SessionManager() as manager:
        register(manager, sandbox)
        first = await manager.access_token("finapi")
        await manager.refresh("finapi")  # the same token again: a reissue
        sandbox.service("finapi").client_access = None  # the server no longer honours it
        async with asyncio.timeout(5):
            renewed = await manager.renew_after_rejection("finapi", None, first)
        assert renewed != first
        assert manager.stats.token_requests == 3


# -- 4. a redeemed rotation thrown away ----------------------------------------------------------


async def test_a_redeemed_set_survives_three_failed_writes(sandbox: Sandbox) -> None:
    """Three failed writes in a row (0.3 s) dropped the new set from memory too; the next renewal
    replayed the spent refresh token and the session died."""
    store = SlowOrFlakyStore(MemoryStore())
    async with SessionManager(store=store, schedule=Schedule(enabled=False)) as manager:
        register(manager, sandbox)
        await manager.store_token_set("everifin", "alice", seeded(sandbox, "alice"))
        store.failing_puts = 3
        with contextlib.suppress(Exception):  # whether this caller sees it is not the point
            await manager.refresh("everifin", "alice")
        await manager.wait_idle()
        renewed = await manager.refresh("everifin", "alice")
        stored = await store.get(manager.key("everifin", "alice"))
        assert stored is not None
        assert stored.token_set.refresh_token == renewed.refresh_token
    stats = sandbox.stats()
    assert stats["reuse_violations"] == 0
    assert stats["sessions_killed"] == 0
    assert stats["token_requests"]["everifin_refresh_token"] == 2


async def test_aclose_waits_for_a_slow_write_of_a_redeemed_set(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """aclose() cancelled a write to a slow store after close_timeout; the restarted worker got
    invalid_grant (Stale token) and the session was lost."""
    path = tmp_path / "tokens.db"
    store = SlowOrFlakyStore(SQLiteStore(path))
    manager = SessionManager(
        store=store, schedule=Schedule(enabled=False), timeouts=Timeouts(close=0.5)
    )
    await manager.start()
    register(manager, sandbox)
    await manager.store_token_set("everifin", "alice", seeded(sandbox, "alice"))
    store.put_delay = 1.5
    renewal = asyncio.ensure_future(manager.refresh("everifin", "alice"))
    await asyncio.sleep(0.2)  # the refresh is answered; its write is in flight
    await manager.aclose()
    await asyncio.gather(renewal, return_exceptions=True)
    async with SessionManager(
        store=SQLiteStore(path), schedule=Schedule(enabled=False)
    ) as restarted:
        register(restarted, sandbox)
        await restarted.refresh("everifin", "alice")
    stats = sandbox.stats()
    assert stats["reuse_violations"] == 0
    assert stats["sessions_killed"] == 0


# -- 5. a reschedule requested while a renewal finishes ------------------------------------------


async def test_a_set_stale_at_birth_is_renewed_in_the_background_again() -> None:
    """A provider answering ``expires_in: 0`` (not finAPI: "already expired") made the scheduler
    ask for a renewal from inside the finishing renewal; it got that same task back and the
    set was never renewed in the background again."""
    async with running_provider(expires_in=0) as provider:
        oidc = Oidc.endpoints(
            name="oidc",
            token_url=provider.base_url + OIDC + "/token",
            allow_insecure_http=True,
        )
        async with SessionManager(schedule=Schedule(jitter=0.0)) as manager:
            manager.register(oidc, ClientCredentials(CLIENT_ID, CLIENT_SECRET))
            await manager.access_token("oidc")
            await asyncio.sleep(3.5)
            background = provider.grants["client_credentials"] - 1
        assert 2 <= background <= 5  # renewed again, but not in a hot loop


# -- the client identity belongs in the key ------------------------------------------------------


async def test_a_client_token_is_never_served_to_another_client(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Client tokens were keyed by provider name only: a manager with a wrong secret (or another
    client id) sharing the store was served the first client's token."""
    path = tmp_path / "tokens.db"
    (finapi, good), _ = sandbox_providers(sandbox)
    async with SessionManager(store=SQLiteStore(path)) as right:
        right.register(finapi, good)
        await right.access_token("finapi")
    for wrong in (
        ClientCredentials(good.client_id, "wrong-secret"),
        ClientCredentials("another-client", "another-secret"),
    ):
        async with SessionManager(store=SQLiteStore(path)) as manager:
            manager.register(finapi, wrong)
            with pytest.raises(InvalidClientError):
                await manager.access_token("finapi")


# -- an empty subject ----------------------------------------------------------------------------


def test_an_empty_subject_is_refused() -> None:
    """``TokenKey(provider, "")`` was accepted and stored, and could not be parsed back."""
    with pytest.raises(ValueError, match="subject"):
        TokenKey("everifin", "")


async def test_restore_skips_a_malformed_stored_key(sandbox: Sandbox, tmp_path: Path) -> None:
    """One malformed key in the store made every later start fail with StoreError."""
    path = tmp_path / "tokens.db"
    async with SessionManager(store=SQLiteStore(path)) as manager:
        register(manager, sandbox)
        await manager.store_token_set("everifin", "alice", seeded(sandbox, "alice"))
    with closing(sqlite3.connect(path)) as db, db:
        row = db.execute("SELECT provider, version, data FROM token_sets").fetchone()
        db.execute(
            "INSERT INTO token_sets (key, provider, version, data) VALUES (?, ?, ?, ?)",
            ("everifin:user:", *row),
        )
    async with SessionManager(store=SQLiteStore(path)) as restarted:
        register(restarted, sandbox)
        await restarted.wait_idle()
        assert await restarted.restore() == 1  # alice (SQLite keeps the duty: none at start)
        assert restarted.state("everifin", "alice").value == "fresh"


# -- suspected items -----------------------------------------------------------------------------


async def test_register_after_start_leaves_no_unretrieved_task_exception(
    sandbox: Sandbox,
) -> None:
    """``register()`` after ``start()`` restored in a task nobody awaited: a StoreError surfaced
    as "Task exception was never retrieved"."""

    class BrokenKeys(SlowOrFlakyStore):
        def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
            async def broken() -> AsyncIterator[TokenKey]:
                raise OSError("store unreachable")
                yield  # pragma: no cover

            return broken()

    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    try:
        async with SessionManager(store=BrokenKeys(MemoryStore())) as manager:
            register(manager, sandbox)
            await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert [c.get("message") for c in unretrieved] == []


async def test_aclose_reports_a_write_it_could_not_wait_for(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Past ``close_timeout`` and ``pending_write_timeout``, a renewed set still unwritten is
    logged at ERROR by its key's hash and reported as a WriteAbandoned event."""
    store = SlowOrFlakyStore(MemoryStore())
    manager = SessionManager(
        store=store,
        schedule=Schedule(enabled=False),
        timeouts=Timeouts(close=0.1, pending_write=0.2),
    )
    events: list[object] = []
    manager.subscribe(events.append)
    await manager.start()
    register(manager, sandbox)
    await manager.store_token_set("everifin", "alice", seeded(sandbox, "alice"))
    store.put_delay = 5.0
    renewal = asyncio.ensure_future(manager.refresh("everifin", "alice"))
    await asyncio.sleep(0.3)  # answered; its write hangs
    key = manager.key("everifin", "alice")
    await manager.aclose()
    await asyncio.gather(renewal, return_exceptions=True)
    abandoned = [e for e in events if isinstance(e, WriteAbandoned)]
    assert [e.key for e in abandoned] == [key.hashed]
    assert any(
        record.levelname == "ERROR" and key.hashed in record.getMessage()
        for record in caplog.records
    )
