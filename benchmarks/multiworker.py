"""P worker processes share one token store; Keycloak rotates every refresh token.

    .venv/bin/python benchmarks/multiworker.py [--quick] [--json PATH]
        [--workers P] [--users U] [--seconds D] [--ttl SECONDS] [--concurrency C]

The sandbox CLI runs in its own process (Everifin's Keycloak realm: a refresh token used twice
is a reuse violation and kills the session). U users log in once (through the login page, by
plain aiohttp) and their token sets are written to the shared store. Then P workers, each a
separate Python process running this script with ``--worker``, each with its own
``SessionManager`` (scheduler on) over the shared store, make authorized ``GET /v1/accounts``
requests for random users with C coroutines for D seconds. Rows: a ``RedisStore`` (a real
``redis-server`` on 127.0.0.1), a ``PostgresStore`` (a throwaway PostgreSQL cluster on
127.0.0.1, started as the store tests start theirs), then a ``SQLiteStore`` file.

Per row: ``expiries`` = U x window / token lifetime; ``token_calls`` = the sandbox's refresh
grants over the window; ``reuse_violations`` from the sandbox; ``reauth_required`` = calls that
raised ``ReauthorizationRequired`` plus the managers' own count; ``rps`` = 200 answers per
second, all workers together. The workers renew 2.5 % of the lifetime ahead (at least 0.4 s),
so one token request per lifetime and store is the floor, whatever the number of workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common as common
import aiohttp

from aiofinaccess import (
    AiofinaccessError,
    ClientCredentials,
    Everifin,
    ReauthorizationRequired,
    RefreshPolicy,
    Schedule,
    SessionManager,
    SQLiteStore,
)
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.oauth.providers import Provider
from aiofinaccess.stores import TokenStore

NAME = "multiworker"
POLICY = RefreshPolicy(lead_fraction=0.025, min_lead=0.4, expiry_margin=0.25)
POLICY_TEXT = "RefreshPolicy(lead_fraction=0.025, min_lead=0.4, expiry_margin=0.25)"
MAX_REQUESTS_PER_COROUTINE = 10_000_000
SCRIPT = Path(__file__).resolve()


# -- the worker process ---------------------------------------------------------------------------


def open_store(spec: str) -> TokenStore:
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        return SQLiteStore(rest)
    if kind == "postgres":
        from aiofinaccess.stores.postgres import PostgresStore  # noqa: PLC0415  (extra "postgres")

        return PostgresStore(rest)
    from aiofinaccess.stores.redis import RedisStore  # noqa: PLC0415  (extra "redis")

    url, _, prefix = rest.partition("|")
    return RedisStore(url, prefix=prefix)


def provider(base: str) -> Provider:
    return Everifin.at(base + "/auth", base)


def credentials() -> ClientCredentials:
    return ClientCredentials(
        common.SANDBOX.everifin_client_id, common.SANDBOX.everifin_client_secret
    )


async def worker(spec: str, base: str, users: int, seconds: float, concurrency: int) -> None:
    outcomes: Counter[str] = Counter()
    rng = random.Random()
    url = base + "/v1/accounts"
    async with SessionManager(
        store=open_store(spec), policy=POLICY, schedule=Schedule(idle_after=None)
    ) as manager:
        manager.register(provider(base), credentials())
        await manager.wait_idle()
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + seconds

            async def loop() -> None:
                for _ in range(MAX_REQUESTS_PER_COROUTINE):
                    if time.monotonic() >= deadline:
                        return
                    user = f"user-{rng.randrange(users)}"
                    try:
                        token = await manager.access_token("everifin", user)
                    except ReauthorizationRequired:
                        outcomes["reauth_required"] += 1
                        await asyncio.sleep(0.01)
                        continue
                    except AiofinaccessError as exc:
                        outcomes[f"error:{type(exc).__name__}"] += 1
                        await asyncio.sleep(0.01)
                        continue
                    try:
                        async with http.get(
                            url, headers={"Authorization": f"Bearer {token}"}
                        ) as response:
                            await response.read()
                            outcomes[f"status:{response.status}"] += 1
                    except aiohttp.ClientError as exc:
                        outcomes[f"error:{type(exc).__name__}"] += 1
                        await asyncio.sleep(0.01)

            await asyncio.gather(*(loop() for _ in range(concurrency)))
        stats = manager.stats.as_dict()
    print(json.dumps({"outcomes": outcomes, "stats": stats}), flush=True)


# -- the coordinator ------------------------------------------------------------------------------


async def seed_users(base: str, store: TokenStore, users: int) -> None:
    """U new Keycloak sessions, written to the shared store by a manager without a scheduler."""
    async with (
        aiohttp.ClientSession() as browser,
        SessionManager(store=store, schedule=Schedule(enabled=False)) as setup,
    ):
        setup.register(provider(base), credentials())
        for index in range(users):
            login = await common.keycloak_login(browser, base)
            sent = Anchor(login.sent_wall, login.sent_monotonic)
            await setup.store_token_set(
                "everifin", f"user-{index}", parse_token_response(login.body, sent=sent)
            )


async def run_workers(
    spec: str, base: str, *, workers: int, users: int, seconds: float, concurrency: int
) -> list[dict[str, Any]]:
    command = [
        common.PYTHON,
        str(SCRIPT),
        "--worker",
        spec,
        base,
        str(users),
        str(seconds),
        str(concurrency),
    ]
    processes = [
        await asyncio.create_subprocess_exec(
            *command,
            cwd=common.ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    results = []
    for process in processes:
        out, err = await asyncio.wait_for(process.communicate(), seconds + 120)
        if process.returncode != 0:
            raise RuntimeError(f"worker failed ({process.returncode}): {err.decode()[-2000:]}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


async def run_row(
    store_kind: str,
    server: common.Server,
    control: aiohttp.ClientSession,
    *,
    workers: int,
    users: int,
    seconds: float,
    ttl: float,
    concurrency: int,
    bar: Any,
    task: Any,
) -> dict[str, Any]:
    base = server.url
    with tempfile.TemporaryDirectory(prefix="aiofinaccess-bench-") as tmp:
        served = store_kind in ("redis", "postgres")
        async with common.store_server(store_kind) if served else contextlib.nullcontext("") as url:
            if store_kind == "redis":
                spec = f"redis:{url}|bench:"
            elif store_kind == "postgres":
                spec = f"postgres:{url}"
            else:
                spec = f"sqlite:{Path(tmp) / 'tokens.db'}"
            bar.update(task, description=f"{store_kind}: {users} users log in")
            await seed_users(base, open_store(spec), users)
            before = await common.sandbox_stats(control, base)
            bar.update(task, description=f"{store_kind}: {workers} workers")
            started = time.monotonic()
            ticker = asyncio.ensure_future(
                common.until(
                    started + seconds + 600,
                    lambda: bar.update(task, completed=min(time.monotonic() - started, seconds)),
                )
            )
            try:
                results = await run_workers(
                    spec,
                    base,
                    workers=workers,
                    users=users,
                    seconds=seconds,
                    concurrency=concurrency,
                )
            finally:
                ticker.cancel()
            window = time.monotonic() - started
            after = await common.sandbox_stats(control, base)
    outcomes: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    for result in results:
        outcomes.update(result["outcomes"])
        stats.update(result["stats"])
    token_calls = common.refresh_calls(after) - common.refresh_calls(before)
    expiries = users * window / ttl
    ok = outcomes.get("status:200", 0)
    return {
        "workers": workers,
        "store": store_kind,
        "users": users,
        "token_lifetime_s": ttl,
        "window_s": window,
        "expiries": expiries,
        "token_calls": token_calls,
        "token_calls_per_expiry": common.ratio(token_calls, expiries),
        "reuse_violations": after["reuse_violations"] - before["reuse_violations"],
        "sessions_killed": after["sessions_killed"] - before["sessions_killed"],
        "reauth_required": outcomes.get("reauth_required", 0) + stats["reauth_required"],
        "rps": ok / window,
        "requests": ok,
        "errors": sum(n for key, n in outcomes.items() if not key.startswith("status:200")),
        "outcomes": dict(outcomes),
        "sandbox_401": common.api_calls(after, 401) - common.api_calls(before, 401),
        "adopted_from_store": stats["adopted_from_store"],
        "scheduled_renewals": stats["scheduled_renewals"],
    }


TARGETS = (
    common.Target("token_calls_per_expiry", "<=", 1.05),
    common.Target("reuse_violations", "==", 0.0),
    common.Target("reauth_required", "==", 0.0),
)


def worker_main(argv: list[str]) -> None:
    """``--worker STORE BASE USERS SECONDS CONCURRENCY``: one worker process."""
    spec, base, users, seconds, concurrency = argv
    asyncio.run(worker(spec, base, int(users), float(seconds), int(concurrency)))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:7])
        return
    parser = common.parser(__doc__)
    parser.add_argument("--workers", type=int, help="worker processes (default 8; quick 4)")
    parser.add_argument("--users", type=int, help="token sets shared (default 40; quick 10)")
    parser.add_argument("--seconds", type=float, help="seconds per store (default 60; quick 12)")
    parser.add_argument("--ttl", type=float, help="access-token lifetime (default 20; quick 5)")
    parser.add_argument("--concurrency", type=int, default=8, help="coroutines per worker")
    parser.add_argument(
        "--stores", nargs="+", choices=("redis", "postgres", "sqlite"), default=None
    )
    args = parser.parse_args()
    workers = args.workers or (4 if args.quick else 8)
    users = args.users or (10 if args.quick else 40)
    seconds = args.seconds or (12.0 if args.quick else 60.0)
    ttl = args.ttl or (5.0 if args.quick else 20.0)
    stores = args.stores or ["redis", "postgres", "sqlite"]
    if not (1 <= workers <= 32 and 1 <= users <= 1000 and 0 < seconds <= 3600 and ttl >= 2):
        parser.error("need 1 <= workers <= 32, 1 <= users <= 1000, 0 < seconds <= 3600, ttl >= 2")
    parameters = {
        "workers": workers,
        "users": users,
        "seconds": seconds,
        "token_lifetime_s": ttl,
        "concurrency_per_worker": args.concurrency,
        "policy": POLICY_TEXT,
        "token": "Everifin Keycloak realm, refresh-token rotation with reuse detection",
    }
    run = common.Run(NAME, args)

    async def run_all() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with (
            common.serve(
                common.sandbox_command("--keycloak-access-ttl", str(ttl), "--sso-idle", "36000"),
                name="sandbox",
            ) as server,
            aiohttp.ClientSession() as control,
        ):
            with common.progress() as bar:
                for store_kind in stores:
                    task = bar.add_task(store_kind, total=seconds)
                    try:
                        rows.append(
                            await run_row(
                                store_kind,
                                server,
                                control,
                                workers=workers,
                                users=users,
                                seconds=seconds,
                                ttl=ttl,
                                concurrency=args.concurrency,
                                bar=bar,
                                task=task,
                            )
                        )
                    except common.Unavailable as exc:
                        rows.append(
                            {"workers": workers, "store": store_kind, "unavailable": str(exc)}
                        )
                    bar.update(task, completed=seconds, description=f"{store_kind}: done")
        return rows

    rows = asyncio.run(run_all())
    checked = common.check_rows(rows, "store", TARGETS)

    run.header(parameters)
    columns = [
        "store",
        "workers",
        "expiries",
        "token calls",
        "calls/expiry",
        "reuse violations",
        "reauth required",
        "req/s",
        "errors",
        "adopted",
    ]
    table_rows: list[list[Any]] = []
    for row in rows:
        if "unavailable" in row:
            table_rows.append([row["store"], row["workers"], f"[yellow]{row['unavailable']}[/]"])
            continue
        table_rows.append(
            [
                row["store"],
                row["workers"],
                row["expiries"],
                row["token_calls"],
                row["token_calls_per_expiry"],
                row["reuse_violations"],
                row["reauth_required"],
                row["rps"],
                row["errors"],
                row["adopted_from_store"],
            ]
        )
    common.stdout.print(
        common.table(
            f"{workers} workers x {args.concurrency} coroutines, {users} users, "
            f"{ttl:g}-s access tokens, {seconds:g} s per store",
            columns,
            table_rows,
        )
    )
    run.finish(parameters, {"rows": rows}, checked)


if __name__ == "__main__":
    main()
