"""``aiofinaccess worker``: the refresh duty alone, as a process, against the sandbox and a
shared SQLite store; SIGTERM drains it and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

from aiofinaccess import Duty, SessionManager, SQLiteStore, TokenKey
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from tests.support.polling import until

LIFETIME = 60.0
USERS = [f"user-{n}" for n in range(12)]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(keycloak_access_ttl=LIFETIME)


async def seed(sandbox: Sandbox, path: Path, *, age: float) -> dict[str, int]:
    """Store one live Keycloak session per user, ``age`` seconds old (due when the worker
    starts), through a serving-only manager that writes their due times."""
    provider, credentials = sandbox_providers(sandbox)[1]
    keycloak = sandbox.service("keycloak")
    async with SessionManager(store=SQLiteStore(path), duty=Duty(enabled=False)) as setup:
        setup.register(provider, credentials)
        for user in USERS:
            sent = Anchor(time.time() - age, time.monotonic() - age)
            token_set = parse_token_response(keycloak.seed_session(user), sent=sent)
            await setup.store_token_set("everifin", user, token_set)
    store = SQLiteStore(path)
    versions = {}
    for user in USERS:
        found = await store.get(TokenKey("everifin", user))
        assert found is not None
        versions[user] = found.version
    await store.aclose()
    return versions


async def renewed(path: Path, before: dict[str, int]) -> int:
    store = SQLiteStore(path)
    try:
        count = 0
        for user, version in before.items():
            found = await store.get(TokenKey("everifin", user))
            count += found is not None and found.version != version
        return count
    finally:
        await store.aclose()


async def test_the_worker_renews_due_sets_and_drains_on_sigterm(
    sandbox: Sandbox,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    # Due now: the default policy renews a 60-second token 12 seconds before it expires.
    before = await seed(sandbox, path, age=LIFETIME - 10.0)
    # Slow token answers, so SIGTERM arrives while renewals are in flight.
    sandbox.set_faults(latency=0.4, scope="token")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiofinaccess",
        "worker",
        "--store",
        str(path),
        "--provider",
        "everifin",
        "--sandbox",
        sandbox.base_url,
        "--poll",
        "0.2",
        "--concurrency",
        "4",
        "--batch",
        "4",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(90):
            started = (await process.stdout.readline()).decode()
            assert "worker started" in started, started

            async def three_renewed() -> bool:
                return await renewed(path, before) >= 3

            await until(three_renewed, 90)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(90):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            out, err = await process.communicate()
            pytest.fail(f"the worker did not stop: {err.decode()[-2000:]}")
    assert process.returncode == 0, err.decode()[-2000:]
    assert "worker stopped" in out.decode()
    done = await renewed(path, before)
    assert 3 <= done < len(USERS), done  # stopped mid-run ...
    stats = sandbox.stats()
    assert stats["reuse_violations"] == 0
    assert stats["sessions_killed"] == 0
    # ... and nothing lost: every stored set still renews (a spent refresh token would fail).
    sandbox.set_faults(latency=0.0)
    requests = stats["token_requests"].get("everifin_refresh_token", 0)
    assert requests == done  # every token request the worker sent was stored
    provider, credentials = sandbox_providers(sandbox)[1]
    async with SessionManager(store=SQLiteStore(path), duty=Duty(enabled=False)) as check:
        check.register(provider, credentials)
        for user in USERS:
            await check.refresh("everifin", user)
    assert sandbox.stats()["sessions_killed"] == 0
    assert sandbox.stats()["reuse_violations"] == 0


def test_the_worker_needs_a_provider(env: dict[str, str], tmp_path: Path) -> None:
    from aiofinaccess.cli.main import main  # noqa: PLC0415

    assert main(["worker", "--store", str(tmp_path / "t.db")]) == 1


async def test_a_killed_workers_claims_are_renewed_by_another_after_their_deadline(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL a worker while its claimed batch hangs at the token endpoint (requests the
    sandbox never processes): another worker renews every unclaimed set at once, the dead
    worker's claims within a second of their deadline, and no session is lost."""
    path = tmp_path / "shared.db"
    before = await seed(sandbox, path, age=LIFETIME - 10.0)
    sandbox.set_faults(rate=1.0, kinds=("timeout",), scope="token", timeout_delay=300.0)
    claim_ttl = 16.0  # about the shortest allowed: token_timeout + lease_ttl
    options = ("--token-timeout", "5", "--claim-ttl", str(claim_ttl))
    first = await start_worker(sandbox, env, path, "--batch", "4", "--concurrency", "4", *options)
    try:
        await until(lambda: _true(sandbox.state.in_flight >= 4), 90)
        killed_at = time.time()
    finally:
        first.kill()
        await first.wait()
    sandbox.set_faults()
    second = await start_worker(sandbox, env, path, "--poll", "0.2", *options)
    try:
        await until(lambda: _at_least(path, before, len(USERS) - 4), 30)
        # The dead worker's four claims stay untouched until they run out ...
        await asyncio.sleep(max(0.0, killed_at + claim_ttl - 3.0 - time.time()))
        assert await renewed(path, before) == len(USERS) - 4
        # ... and are renewed by the survivor right after.
        await until(lambda: _at_least(path, before, len(USERS)), 30)
        taken_over = time.time() - (killed_at + claim_ttl)
    finally:
        if second.returncode is None:
            second.send_signal(signal.SIGTERM)
        _out, err = await second.communicate()
    print(f"\nclaims of a SIGKILLed worker renewed {taken_over:.2f} s after their deadline")  # noqa: T201
    assert second.returncode == 0, err.decode()[-2000:]
    assert taken_over <= 1.0 + 0.2 + 0.3  # a second, the survivor's poll, one renewal
    stats = sandbox.stats()
    assert stats["sessions_killed"] == 0
    assert stats["reuse_violations"] == 0


async def _true(value: bool) -> bool:
    return value


async def _at_least(path: Path, before: dict[str, int], count: int) -> bool:
    return await renewed(path, before) >= count


async def start_worker(
    sandbox: Sandbox, env: dict[str, str], path: Path, *options: str
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiofinaccess", "worker", "--store", str(path),
        "--provider", "everifin", "--sandbox", sandbox.base_url, *options,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(90):
        started = (await process.stdout.readline()).decode()
    assert "worker started" in started, started
    return process
