"""``aiofinaccess worker`` on a real PostgreSQL: the URL from ``--store``, the store encrypted
with the keys of ``AIOFINACCESS_ENCRYPTION_KEYS``; every due set renewed once, no session lost
(the Redis twin: tests/cli/test_worker_redis.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiofinaccess import TokenKey
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.stores.codec import FernetCodec
from aiofinaccess.stores.postgres import PostgresStore
from tests.cli import test_worker_redis as twin
from tests.support.polling import until
from tests.support.postgres_server import Server, running_postgres


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(keycloak_access_ttl=twin.LIFETIME)


@pytest.fixture
def server() -> Iterator[Server]:
    with running_postgres() as server:
        yield server


async def versions(url: str) -> dict[str, int]:
    reader = PostgresStore(url, codec=FernetCodec([twin.KEY]))
    try:
        found = {user: await reader.get(TokenKey("everifin", user)) for user in twin.USERS}
    finally:
        await reader.aclose()
    return {user: stored.version for user, stored in found.items() if stored is not None}


async def test_the_worker_renews_an_encrypted_postgres_store(
    sandbox: Sandbox,
    server: Server,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The twin's seed opens its store through its module's store(): point it at PostgreSQL.
    monkeypatch.setattr(
        twin, "store", lambda url: PostgresStore(url, codec=FernetCodec([twin.KEY]))
    )
    monkeypatch.setattr(twin, "versions", versions)
    before = await twin.seed(sandbox, server.url)
    env = {**env, "AIOFINACCESS_ENCRYPTION_KEYS": twin.KEY}
    process = await twin.start(sandbox, env, tmp_path, "--store", server.url)
    try:

        async def all_renewed() -> bool:
            now = await versions(server.url)
            return all(now[user] != before[user] for user in twin.USERS)

        await until(all_renewed, 30)
    finally:
        out, _ = await twin.stop(process)
    count = len(twin.USERS)
    assert re.search(rf"{count} claimed, {count} token requests, 0 failed", out), out
    assert twin.untouched(tmp_path)  # no directory named after the URL
    assert sandbox.stats()["sessions_killed"] == 0
