"""Four worker processes share one store and never burn a rotating refresh token.

Each worker runs a session manager with its scheduler and a request load against the sandbox
(Keycloak rotation with reuse detection, 2-second access tokens) for MULTIPROCESS_SECONDS
(default 30). Over the whole run: zero reuse violations, zero killed sessions, zero
re-authorizations, no access token expired when it was handed out (the sandbox judges every
one), and no more than 1.1 token requests per token lifetime that elapsed. ``401`` answers are
printed, not asserted: a request that waits for a CPU longer than the 50 ms expiry margin
arrives with a token that was valid when handed out (seen once under CI load).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiofinaccess import Schedule, SessionManager, SQLiteStore
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.stores import TokenStore
from aiofinaccess.stores.redis import RedisStore
from tests.session.test_durability import connect_users
from tests.support.redis_server import running_redis

WORKERS = 4
USERS = 10
TTL = 2.0
SECONDS = float(os.environ.get("MULTIPROCESS_SECONDS", "30"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(keycloak_access_ttl=TTL)


@pytest.fixture(params=["sqlite", "redis"])
async def shared_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, TokenStore]]:
    if request.param == "sqlite":
        path = tmp_path / "shared.db"
        yield f"sqlite:{path}", SQLiteStore(path)
        return
    async with running_redis() as url:
        prefix = "mp-test:"
        yield f"redis:{url}|{prefix}", RedisStore(url, prefix=prefix)


async def run_worker(spec: str, sandbox: Sandbox) -> dict[str, Any]:
    config = sandbox.config
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.multiprocess_worker",
        spec,
        sandbox.base_url,
        str(USERS),
        str(SECONDS),
        config.everifin_client_id,
        config.everifin_client_secret,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), SECONDS + 60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def test_four_workers_share_one_store(
    sandbox: Sandbox, shared_store: tuple[str, TokenStore]
) -> None:
    """No reuse, no re-authorization, about one token request per expiry."""
    spec, store = shared_store
    async with SessionManager(store=store, schedule=Schedule(enabled=False)) as setup:
        from aiofinaccess.integrations.testing import sandbox_providers  # noqa: PLC0415

        provider, credentials = sandbox_providers(sandbox)[1]
        setup.register(provider, credentials)
        await connect_users(setup, sandbox, [f"user-{n}" for n in range(USERS)])
    before = sandbox.stats()["token_requests"].get("everifin_refresh_token", 0)
    started = time.monotonic()
    results = await asyncio.gather(*(run_worker(spec, sandbox) for _ in range(WORKERS)))
    elapsed = time.monotonic() - started
    stats = sandbox.stats()
    token_calls = stats["token_requests"].get("everifin_refresh_token", 0) - before
    expiries = USERS * elapsed / TTL
    reauth = sum(result["outcomes"].get("reauth_required", 0) for result in results)
    requests = sum(
        count
        for result in results
        for outcome, count in result["outcomes"].items()
        if outcome.startswith("status:")
    )
    print(  # noqa: T201  (the figures the issue asks for, shown with -s)
        f"\n{spec.split(':')[0]}: workers={WORKERS} users={USERS} seconds={elapsed:.1f} "
        f"requests={requests} expiries={expiries:.0f} token_calls={token_calls} "
        f"ratio={token_calls / expiries:.3f} reuse_violations={stats['reuse_violations']} "
        f"sessions_killed={stats['sessions_killed']} reauth={reauth}"
    )
    assert stats["reuse_violations"] == 0
    assert stats["sessions_killed"] == 0
    assert reauth == 0
    assert all(
        not outcome.startswith("error:") for result in results for outcome in result["outcomes"]
    )
    assert requests > WORKERS * 100
    assert token_calls <= 1.1 * expiries
    handed_out = sum(result["handout"].get("checked", 0) for result in results)
    expired = sum(
        result["handout"].get("expired", 0) + result["handout"].get("unknown", 0)
        for result in results
    )
    unauthorized = stats["api_calls"].get("401", 0)
    print(f"handed out {handed_out}, expired then {expired}, 401s {unauthorized}")  # noqa: T201
    assert handed_out >= requests
    assert expired == 0
