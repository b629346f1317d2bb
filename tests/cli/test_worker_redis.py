"""``aiofinaccess worker`` on a real Redis: the URL from ``--store`` or ``AIOFINACCESS_STORE``,
the store encrypted with the keys of ``AIOFINACCESS_ENCRYPTION_KEYS``; a set it cannot decode
counts as failed in the exit summary."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from aiofinaccess import Duty, SessionManager, TokenKey
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.stores.codec import FernetCodec
from aiofinaccess.stores.redis import RedisStore
from tests.support.polling import until
from tests.support.redis_server import running_redis

LIFETIME = 60.0
USERS = [f"user-{n}" for n in range(6)]
KEY = Fernet.generate_key().decode()


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(keycloak_access_ttl=LIFETIME)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    async with running_redis() as url:
        yield url


def untouched(directory: Path) -> bool:
    return not any(directory.iterdir())


def store(url: str) -> RedisStore:
    return RedisStore(url, codec=FernetCodec([KEY]))


async def seed(sandbox: Sandbox, url: str) -> dict[str, int]:
    """One encrypted live Keycloak session per user, due now; their versions."""
    provider, credentials = sandbox_providers(sandbox)[1]
    keycloak = sandbox.service("keycloak")
    age = LIFETIME - 10.0  # renewed 12 s before expiry by the default policy: due
    async with SessionManager(store=store(url), duty=Duty(enabled=False)) as setup:
        setup.register(provider, credentials)
        for user in USERS:
            sent = Anchor(time.time() - age, time.monotonic() - age)
            token_set = parse_token_response(keycloak.seed_session(user), sent=sent)
            await setup.store_token_set("everifin", user, token_set)
    return await versions(url)


async def versions(url: str) -> dict[str, int]:
    reader = store(url)
    try:
        found = {user: await reader.get(TokenKey("everifin", user)) for user in USERS}
    finally:
        await reader.aclose()
    return {user: stored.version for user, stored in found.items() if stored is not None}


async def start(
    sandbox: Sandbox, env: dict[str, str], cwd: Path, *options: str
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiofinaccess", "worker", "--provider", "everifin",
        "--sandbox", sandbox.base_url, "--poll", "0.2", *options,
        env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(60):
        started = (await process.stdout.readline()).decode()
    assert "worker started" in started, started
    return process


async def stop(process: asyncio.subprocess.Process) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    return out.decode(), err.decode()


@pytest.mark.parametrize("given", ["flag", "environment"])
async def test_the_worker_renews_an_encrypted_redis_store(
    given: str, sandbox: Sandbox, redis_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    before = await seed(sandbox, redis_url)
    env = {**env, "AIOFINACCESS_ENCRYPTION_KEYS": KEY}
    options = ("--store", redis_url) if given == "flag" else ()
    if given == "environment":
        env["AIOFINACCESS_STORE"] = redis_url
    process = await start(sandbox, env, tmp_path, *options)
    try:

        async def all_renewed() -> bool:
            now = await versions(redis_url)
            return all(now[user] != before[user] for user in USERS)

        await until(all_renewed, 30)
    finally:
        out, _ = await stop(process)
    assert re.search(rf"{len(USERS)} claimed, {len(USERS)} token requests, 0 failed", out), out
    assert untouched(tmp_path)  # no directory named after the URL
    assert sandbox.stats()["sessions_killed"] == 0


async def test_sets_the_worker_cannot_decode_count_as_failed(
    sandbox: Sandbox, redis_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """No keys given for an encrypted store: every claimed set fails to decode, and the exit
    summary says so (it said "0 failed")."""
    await seed(sandbox, redis_url)
    process = await start(sandbox, env, tmp_path, "--store", redis_url)
    try:

        async def all_claimed() -> bool:  # a claim moves a set's due time to its deadline
            reader = RedisStore(redis_url)
            try:
                due = await reader.next_due()
            finally:
                await reader.aclose()
            return due is not None and due > time.time() + 5

        await until(all_claimed, 30)
    finally:
        out, _ = await stop(process)
    assert re.search(rf"{len(USERS)} claimed, 0 token requests, {len(USERS)} failed", out), out
