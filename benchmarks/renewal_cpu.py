"""CPU per renewal of one duty worker, beside the floor: one raw token POST and one store write.

    .venv/bin/python benchmarks/renewal_cpu.py [--quick] [--json PATH] [--store redis|postgres]
        [--sets N] [--rate R] [--profile PATH] [--top K]

The store's server (``redis-server`` or PostgreSQL, started here as fleet.py starts them) and the
sandbox run in their own processes (only this one's CPU counts). N Keycloak sessions are seeded in
the sandbox and the N matching token sets written to the store as fleet.py seeds them, due over
about N / R seconds (R renewals a second, as in fleet.py's scaling phase). One ``SessionManager``
with the refresh duty, in this process, then renews them: CPU per renewal is this process's user +
system CPU over the window (from its first claim until N renewals were stored, or two intervals),
over the renewals stored. ``--profile`` runs the window under cProfile and prints its top K entries
(tottime and cumtime); the stats go to PATH.

The floor: N other seeded sessions, each renewed by one ``aiohttp`` POST of the refresh grant
to the sandbox's token endpoint (one session, its connection pool) and one write of the answer
(redis-py's ``SET``; asyncpg's upsert of one row on PostgreSQL, from a pool as large as the
store's), paced at the same rate: CPU per pair.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import _common as common
import _fleet_plan as plan_
import _fleet_run as run_
import _fleet_store as store_
import aiohttp

from aiofinaccess import ClientCredentials, Duty, Everifin, RefreshPolicy, SessionManager

NAME = "renewal_cpu"
POLICY = RefreshPolicy()
POLL = 0.05


def new_plan(sets: int, rate: float, start: float) -> plan_.Plan:
    ttl = plan_.lifetime_for(sets, rate, POLICY)
    return plan_.Plan(sets, ttl, plan_.ahead(ttl, POLICY), start, secrets.token_hex(6))


async def seed(env: run_.Env, plan: plan_.Plan, *, store: bool) -> None:
    await run_.seed_sandbox(env, plan)
    if store:
        target = env.store()
        await run_.seed_store(target, plan)
        await target.aclose()


async def duty_window(
    env: run_.Env, plan: plan_.Plan, profiler: cProfile.Profile | None
) -> dict[str, Any]:
    """One duty worker renews the plan's sets; its CPU over the window."""
    sandbox = common.SANDBOX
    store, claims = env.store(), [0]
    claim_due = store.claim_due

    async def counted(**kwargs: Any) -> Any:  # claims per renewal: a claim's cost is shared
        claims[0] += 1
        return await claim_due(**kwargs)

    store.claim_due = counted  # type: ignore[method-assign]
    manager = SessionManager(store=store, policy=POLICY, duty=Duty(enabled=True))
    manager.register(
        Everifin.at(env.sandbox_url + "/auth", env.sandbox_url),
        ClientCredentials(sandbox.everifin_client_id, sandbox.everifin_client_secret),
    )
    await manager.start()
    try:
        if (wait := plan.first_due - time.time()) > 0:
            await asyncio.sleep(wait)
        stats = manager.stats
        began, cpu0, done0 = time.monotonic(), time.process_time(), stats.rotations
        claims0 = claims[0]
        if profiler is not None:
            profiler.enable()
        for _ in range(int((2 * plan.interval + 5) / POLL)):  # polled: no event to subscribe
            if stats.rotations - done0 >= plan.sets:
                break
            await asyncio.sleep(POLL)
        if profiler is not None:
            profiler.disable()
        cpu, elapsed = time.process_time() - cpu0, time.monotonic() - began
        renewed = stats.rotations - done0
        claimed = claims[0] - claims0
    finally:
        await manager.aclose()
    return {
        "renewals": renewed,
        "seconds": elapsed,
        "cpu_s": cpu,
        "cpu_per_renewal_ms": common.ratio(cpu, renewed) * 1e3,
        "claims_per_renewal": common.ratio(claimed, renewed),
        "token_requests": stats.token_requests,
        "refresh_failures": stats.refresh_failures,
    }


async def raw_writer(url: str) -> tuple[Callable[[int, bytes], Awaitable[Any]], Any]:
    """One raw write per pair, and what closes its client: redis-py's SET, or an asyncpg
    upsert of one row."""
    if store_.is_postgres(url):
        import asyncpg  # noqa: PLC0415

        pool = await asyncpg.create_pool(url, min_size=1, max_size=store_.POOL)
        await pool.execute("CREATE TABLE IF NOT EXISTS floor (k int PRIMARY KEY, v bytea)")
        sql = "INSERT INTO floor VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
        return (lambda index, body: pool.execute(sql, index, body)), pool.close
    import redis.asyncio as aioredis  # noqa: PLC0415

    blocking = aioredis.BlockingConnectionPool.from_url(url, max_connections=100)
    client = aioredis.Redis.from_pool(blocking)  # as the store's: calls wait for a connection
    return (lambda index, body: client.set(f"floor:{index}", body)), client.aclose


async def floor_window(env: run_.Env, plan: plan_.Plan) -> dict[str, Any]:
    """The plan's sessions renewed by a raw POST and a raw write each, paced like the duty."""
    sandbox = common.SANDBOX
    url = common.keycloak_token_url(env.sandbox_url)
    write, close = await raw_writer(env.store_url)
    failures = 0
    async with aiohttp.ClientSession() as http:

        async def pair(index: int) -> None:
            nonlocal failures
            _, refresh = plan.tokens(index)
            form = {
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": sandbox.everifin_client_id,
                "client_secret": sandbox.everifin_client_secret,
            }
            async with http.post(url, data=form) as response:
                body = await response.read()
                failures += response.status != 200
            await write(index, body)

        order = sorted(range(plan.sets), key=plan.due)
        if (wait := plan.first_due - time.time()) > 0:
            await asyncio.sleep(wait)
        began, cpu0 = time.monotonic(), time.process_time()
        tasks = []
        for index in order:
            if (delay := plan.due(index) - time.time()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(pair(index)))
        await asyncio.gather(*tasks)
        cpu, elapsed = time.process_time() - cpu0, time.monotonic() - began
    await close()
    return {
        "pairs": plan.sets,
        "seconds": elapsed,
        "cpu_s": cpu,
        "cpu_per_pair_ms": cpu / plan.sets * 1e3,
        "failures": failures,
    }


def top(profiler: cProfile.Profile, sort: str, count: int) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort).print_stats(count)
    return out.getvalue()


async def measure(args: Any) -> dict[str, Any]:
    ttl = plan_.lifetime_for(args.sets, args.rate, POLICY)
    sso = str(plan_.SSO_SECONDS)
    sandbox = common.sandbox_command(
        "--keycloak-access-ttl", str(ttl), "--sso-idle", sso, "--sso-max", sso
    )
    profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not wall
    with tempfile.TemporaryDirectory(prefix="aiofinaccess-renewal-cpu-") as tmp:
        async with (
            common.store_server(args.store) as store_url,
            common.serve(sandbox, name="sandbox") as server,
            aiohttp.ClientSession() as http,
        ):
            env = run_.Env(store_url, server.url, http, Path(tmp))
            seeding = 5.0 + args.sets * 1e-3
            duty_plan = new_plan(args.sets, args.rate, time.time() + seeding)
            await seed(env, duty_plan, store=True)
            duty = await duty_window(env, duty_plan, profiler)
            floor_plan = new_plan(args.sets, args.rate, time.time() + 2.0)
            await seed(env, floor_plan, store=False)
            floor = await floor_window(env, floor_plan)
    out = {"duty": duty, "floor": floor, "ttl": ttl, "interval_s": duty_plan.interval}
    if profiler is not None:
        profiler.dump_stats(args.profile)
        out["profile"] = {sort: top(profiler, sort, args.top) for sort in ("tottime", "cumtime")}
    return out


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--store", choices=("redis", "postgres"), default="redis")
    parser.add_argument("--sets", type=int, help="token sets N (default 3,000; quick 1,000)")
    parser.add_argument("--rate", type=float, default=300.0, help="renewals per second to aim at")
    parser.add_argument("--profile", type=Path, metavar="PATH", help="cProfile the duty window")
    parser.add_argument("--top", type=int, default=30, help="profile entries to print")
    args = parser.parse_args()
    args.sets = args.sets or (1_000 if args.quick else 3_000)
    if not (100 <= args.sets <= 100_000 and args.rate > 0):
        parser.error("need 100 <= sets <= 100,000 and rate > 0")
    run = common.Run(NAME, args)
    out = asyncio.run(measure(args))
    parameters = {"store": args.store, "sets": args.sets, "rate": args.rate}
    parameters["profiled"] = bool(args.profile)
    run.header(parameters)
    duty, floor = out["duty"], out["floor"]
    figures = {
        "cpu_per_renewal_ms": duty["cpu_per_renewal_ms"],
        "floor_cpu_per_pair_ms": floor["cpu_per_pair_ms"],
        "ratio_to_floor": common.ratio(duty["cpu_per_renewal_ms"], floor["cpu_per_pair_ms"]),
        "duty": duty,
        "floor": floor,
    }
    rows = [
        ["duty worker: CPU per renewal, ms", duty["cpu_per_renewal_ms"]],
        ["  renewals stored / window s", f"{duty['renewals']} / {duty['seconds']:.1f}"],
        ["  store claims per renewal", duty["claims_per_renewal"]],
        ["floor: CPU per POST + write, ms", floor["cpu_per_pair_ms"]],
        ["ratio duty / floor", figures["ratio_to_floor"]],
    ]
    common.stdout.print(common.table("CPU per renewal", ["figure", "value"], rows))
    if "profile" in out:
        for sort, text in out["profile"].items():
            common.stdout.print(f"[bold]profile by {sort}[/]")
            common.stdout.print(text, markup=False)
    run.finish(parameters, figures)


if __name__ == "__main__":
    main()
