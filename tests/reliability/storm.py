"""Fault storm: many sessions under a 30 % failure rate, then recovery.

    .venv/bin/python -m tests.reliability.storm --sessions 1000 --storm 180 [--json PATH]

The sandbox's token endpoint and API fail a share of requests (5xx, connections that hang and
are dropped, dropped connections, HTML and truncated bodies, 429 with ``Retry-After``) while a
load reads accounts for random sessions through the SDK. The run checks what users care
about: no expired token is ever handed out (client clock and server 401s), no session is lost
(no reuse, no re-authorization), every failure that reaches the app is typed, no task
exception goes unretrieved, and after the storm every session works again within one backoff
interval.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from aiofinaccess import (
    AiofinaccessError,
    ClientCredentials,
    Everifin,
    Limits,
    RefreshPolicy,
    RetryPolicy,
    Schedule,
    SessionManager,
    SQLiteStore,
    Timeouts,
    TokenKey,
)
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.everifin import BankConnect
from aiofinaccess.sandbox import SandboxConfig, run_sandbox

STORM_KINDS = ("500", "502", "503", "drop", "malformed", "html", "429", "timeout")
RETRY = RetryPolicy(
    attempts=3,
    initial=0.05,
    max_wait=0.5,
    max_retry_after=2.0,
    backoff_initial=0.5,
    backoff_max=5.0,
)


@attrs.define
class StormReport:
    sessions: int
    storm_seconds: float
    fault_rate: float
    faults_injected: dict[str, int]
    requests: int
    typed_failures: dict[str, int]
    untyped_failures: int
    expired_served: int
    server_401: int
    reuse_violations: int
    sessions_killed: int
    reauth_required: int
    unretrieved_task_errors: int
    recovery_seconds: float
    recovery_limit_seconds: float
    sessions_working_after: int


async def run_storm(
    *,
    sessions: int,
    storm_seconds: float,
    rate: float = 0.3,
    store_path: Path,
    concurrency: int = 50,
) -> StormReport:
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    config = SandboxConfig(keycloak_access_ttl=10.0, sso_idle=3600.0)
    async with run_sandbox(config) as sandbox:
        keycloak = sandbox.service("keycloak")
        provider = Everifin.at(sandbox.idp_url, sandbox.api_url)
        store = SQLiteStore(store_path)
        users = [f"user-{n}" for n in range(sessions)]
        now = Anchor(time.time(), time.monotonic())
        for user in users:
            token_set = parse_token_response(keycloak.seed_session(user), sent=now)
            await store.put(TokenKey(provider.name, user), token_set, expected_version=None)
        async with SessionManager(
            store=store,
            policy=RefreshPolicy(),
            retry=RETRY,
            timeouts=Timeouts(token=2.0),
            schedule=Schedule(idle_after=None),
            limits=Limits(concurrent_refreshes=32),
        ) as manager:
            manager.register(
                provider,
                ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
            )
            await manager.restore()
            bank = BankConnect(manager, timeout=2.0)
            typed: Counter[str] = Counter()
            untyped = 0
            expired_served = 0
            requests = 0

            async def one(user: str) -> bool:
                nonlocal untyped, expired_served, requests
                requests += 1
                try:
                    token_set = await manager.token_set("everifin", user)
                    if token_set.expires_at is not None and token_set.expires_at <= time.time():
                        expired_served += 1
                    await bank.accounts(user)
                except AiofinaccessError as exc:
                    typed[type(exc).__name__] += 1
                    return False
                except Exception:
                    untyped += 1
                    return False
                return True

            async def load(until: float) -> None:
                rng = random.Random()
                while time.monotonic() < until:
                    await one(rng.choice(users))

            sandbox.set_faults(
                rate=rate, kinds=STORM_KINDS, scope="all", retry_after=1, timeout_delay=3.0
            )
            storm_end = time.monotonic() + storm_seconds
            await asyncio.gather(*(load(storm_end) for _ in range(concurrency)))
            faults = dict(sandbox.stats().get("faults_injected", {}))
            sandbox.set_faults(rate=0.0)
            calm = time.monotonic()
            limit = RETRY.backoff_max + 5.0  # one backoff interval, plus a request's time
            working = 0
            while time.monotonic() - calm < 3 * limit:
                results = await asyncio.gather(*(one(user) for user in users))
                working = sum(results)
                if working == len(users):
                    break
                await asyncio.sleep(0.5)
            recovery = time.monotonic() - calm
            reauth = manager.stats.reauth_required
        stats = sandbox.stats()
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    return StormReport(
        sessions=sessions,
        storm_seconds=storm_seconds,
        fault_rate=rate,
        faults_injected=faults,
        requests=requests,
        typed_failures=dict(typed),
        untyped_failures=untyped,
        expired_served=expired_served,
        server_401=stats["api_calls"].get("401", 0),
        reuse_violations=stats["reuse_violations"],
        sessions_killed=stats["sessions_killed"],
        reauth_required=reauth,
        unretrieved_task_errors=len(unretrieved),
        recovery_seconds=round(recovery, 2),
        recovery_limit_seconds=limit,
        sessions_working_after=working,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Fault storm against the sandbox.")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--storm", type=float, default=180.0, help="seconds of 30 %% failures")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        report = asyncio.run(
            run_storm(
                sessions=args.sessions,
                storm_seconds=args.storm,
                rate=args.rate,
                store_path=Path(tmp) / "t.db",
            )
        )
    figures = attrs.asdict(report)
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
