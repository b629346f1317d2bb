"""A fleet on Redis or PostgreSQL: N worker processes share the refresh duty for M token sets.

    .venv/bin/python benchmarks/fleet.py [--quick] [--json PATH] [--store redis|postgres]
        [--sets M] [--workers N] [--rate R] [--seconds D] [--scaling N [N ...]]
        [--scaling-seconds S] [--no-kill] [--max-reuse K] [--kill-in-window]

Everything runs in its own process on 127.0.0.1: the store's server (started here: a
``redis-server`` with nothing on disk, or a PostgreSQL cluster in a temporary directory with
fsync off, as the store tests start theirs), the sandbox (``python -m aiofinaccess sandbox``;
Everifin's Keycloak rotates every refresh token and a token presented twice is a reuse
violation that kills the session), the workers and a load process (``_fleet_worker.py``). M
Keycloak sessions are seeded in the sandbox in bulk (``POST /_sandbox/keycloak/sessions``) and
the M matching token sets written to the store with their due times, spread so that the fleet
renews about R sets a second (the token lifetime is chosen for it; default policy: due 20 % of
the lifetime before expiry).

Phases (full: M = 100,000, N = 4, D = one lifetime; quick: M = 10,000, D = 20 s):

1. **start-up**: one worker against an empty store (its RSS is the *baseline*), one against
   10,000 idle sets (full mode), and each main worker at M sets: spawn to first claim, s.
2. **main window** (D s): N duty workers (``SessionManager(duty=True)``) and one load process
   making M ``access_token()`` requests spread over the M users through two serving-only
   managers (``duty=False``, bounded working set); the sandbox judges every token handed out.
3. **SIGKILL**: one worker is killed; the sets it had claimed and not stored must be renewed
   by the others within their claim deadline + 1 s. A set whose refresh the sandbox answered
   as the worker died is lost with its new refresh token (``kill_lost_in_window``) unless the
   sandbox's Keycloak allows one reuse of the token used last (``--max-reuse 1``): then the
   successor's replay of it is that reuse. ``--kill-in-window`` times the kill for that case.
4. **scaling**: fresh groups of 1, 2 and 4 workers take over in turn (S s each, no load): CPU
   per renewal summed over the group, and RSS per worker.

Figures: token requests per expiry (sandbox refresh grants attributed to the due event they
served, over the due events of the main window), renewals done twice (successful grants beyond
the first per due event), reuse violations and sessions killed (sandbox counters, whole run),
sessions lost (stored sets whose refresh token the sandbox no longer honours at the end, plus
due events never renewed), lateness (stored renewal minus due time) p50/p99, each worker's
share of renewals (max/min), per-worker peak RSS against baseline + 1.5 x (M/N) x bytes per set
(bytes per set: tracemalloc of 2,000 parsed token sets with their keys), store memory per set
(Redis: ``INFO memory`` before/after seeding; PostgreSQL: ``pg_total_relation_size`` of the
fleet schema's tables before/after), start-up at each size, CPU per renewal vs N.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import secrets
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import _common as common
import _fleet_plan as plan_
import _fleet_run as run_
import _fleet_store as store_
import aiohttp

from aiofinaccess import RefreshPolicy
from aiofinaccess.core.tokens import TokenKey

NAME = "fleet"
POLICY = RefreshPolicy()
IDLE_SETS = 10_000
SETTLE = 2.0
LOAD_MANAGERS, LOAD_WORKING_SET = 2, 5_000


def bytes_per_set(plan: plan_.Plan, count: int = 2_000) -> float:
    """What holding one parsed token set and its key costs in memory (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    held = {TokenKey(run_.PROVIDER, plan_.subject(i)): plan.token_set(i) for i in range(count)}
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del held
    return traced / count


async def startup(env: run_.Env, name: str, namespace: str, sets: int) -> dict[str, Any]:
    child = await env.spawn(name, "worker", namespace=namespace)
    first = await child.wait_first_claim()
    await asyncio.sleep(1.0)
    rss = child.rss()
    await child.stop()
    return startup_row(child, first, sets) | {"rss_mib": rss / 2**20}


def startup_row(child: run_.Child, first: tuple[float, float], sets: int) -> dict[str, Any]:
    ready = child.ready
    return {
        "worker": child.name,
        "sets": sets,
        "startup_s": first[0] - child.spawned,
        "startup_cpu_s": first[1],
        "interpreter_and_imports_s": ready["imported"] - child.spawned,
        "manager_start_s": ready["started"] - ready["imported"],
    }


async def seed_phase(env: run_.Env, args: Any, out: dict[str, Any]) -> plan_.Plan:
    """The plan's sessions in the sandbox and sets in the store; store memory per set."""
    ttl = plan_.lifetime_for(args.sets, args.rate, POLICY)
    seed_estimate = 12.0 + args.sets * 350e-6
    plan = plan_.Plan(
        args.sets, ttl, plan_.ahead(ttl, POLICY), time.time() + seed_estimate, secrets.token_hex(6)
    )
    out |= {"plan": plan, "bytes_per_set": bytes_per_set(plan)}
    used_before = await store_.used_bytes(env.store_url, env.namespace)
    seeding = time.monotonic()
    await run_.seed_sandbox(env, plan)
    store = env.store()
    await run_.seed_store(store, plan)
    await store.aclose()
    out["seed_s"] = time.monotonic() - seeding
    used_after = await store_.used_bytes(env.store_url, env.namespace)
    out["store_bytes_per_set"] = (used_after - used_before) / plan.sets
    return plan


async def startup_phase(env: run_.Env, plan: plan_.Plan, out: dict[str, Any]) -> None:
    """Workers on an empty store (the baseline RSS) and on 10,000 idle sets (if M is more)."""
    out["startup"] = [await startup(env, "startup-empty", "fleet_empty", 0)]
    if plan.sets > IDLE_SETS:
        far = time.time() + 86400
        idle = plan_.Plan(IDLE_SETS, plan.ttl, plan.lead, far, secrets.token_hex(6))
        idle_store = env.store("fleet_idle")
        await run_.seed_store(idle_store, idle)
        await idle_store.aclose()
        out["startup"].append(await startup(env, "startup-idle", "fleet_idle", IDLE_SETS))
    out["baseline_rss"] = out["startup"][0]["rss_mib"] * 2**20


async def main_phase(
    env: run_.Env, args: Any, plan: plan_.Plan, out: dict[str, Any]
) -> list[run_.Child]:
    """N duty workers and the load process for the main window; returns the workers."""
    before = await common.sandbox_stats(env.http, env.sandbox_url)
    workers, firsts = [], []
    for k in range(args.workers):  # one at a time: each start-up is timed on its own
        workers.append(await env.spawn(f"w{k}", "worker"))
        firsts.append(await workers[-1].wait_first_claim())
    out["startup"] += [startup_row(w, f, plan.sets) for w, f in zip(workers, firsts, strict=True)]
    load_options = ["--users", str(plan.sets), "--requests", str(args.requests)]
    load_options += ["--seconds", str(args.seconds), "--managers", str(LOAD_MANAGERS)]
    load = await env.spawn("load", "load", *load_options, "--working-set", str(LOAD_WORKING_SET))
    start = max(wall for wall, _ in firsts)
    cpu0, others0 = [w.cpu() for w in workers], run_.servers_cpu(env) | {"load": load.cpu()}
    end = start + args.seconds
    await run_.sample_rss([*workers, load], time.monotonic() + (end - time.time()))
    cpu = [w.cpu() - c for w, c in zip(workers, cpu0, strict=True)]
    others = run_.servers_cpu(env) | {"load": load.cpu()}
    out["main"] = {"start": start, "end": end, "workers": workers, "load": load, "cpu": cpu}
    out["main"]["cpu_others"] = {name: others[name] - others0[name] for name in others}
    out["main"]["load_average"] = os.getloadavg()[0]
    out["main"]["backlog"] = await run_.backlog(env)
    out["main"]["stats_before"] = before
    await asyncio.sleep(SETTLE)
    return workers


async def kill_phase(
    env: run_.Env, plan: plan_.Plan, workers: list[run_.Child], out: dict[str, Any], *, window: bool
) -> list[run_.Child]:
    """SIGKILL the first worker; wait out its claims; returns the survivors.

    When: the moment its record shows claimed sets not yet stored (mid-batch), or with
    ``window``, the moment the sandbox has answered a refresh of a set it holds and it has not
    stored the answer yet (the send-to-store window); 10 s at most of looking either way.
    """
    victim, survivors = workers[0], workers[1:]
    journal = run_.JournalTail(env)
    await journal.read()  # from now on
    deadline = time.monotonic() + 10.0
    answered: set[int] = set()
    while time.monotonic() < deadline:
        held = victim.holding()
        if window:
            answered |= await journal.granted(plan)
        if held and (not window or answered & held.keys()):
            break
        await asyncio.sleep(0.001)
    killed_at = victim.kill()
    await victim.process.wait()
    held = plan_.held(plan_.parse_record(victim.name, victim.record.read_text()), killed_at)
    deadline = max((d for _, d in held.values()), default=killed_at)
    await asyncio.sleep(min(120.0, max(0.0, deadline - time.time()) + SETTLE + 1.0))
    out["kill"] = {"victim": victim, "at": killed_at, "survivors": survivors}
    return survivors


async def scaling_phase(
    env: run_.Env, args: Any, previous: list[run_.Child], out: dict[str, Any], *, progress: Any
) -> None:
    """Groups of 1, 2, 4 workers take over in turn: CPU per renewal and RSS per worker."""
    out["scaling"] = []
    for n in args.scaling:
        progress(f"scaling: {n} worker(s)")
        group = list(await asyncio.gather(*(env.spawn(f"n{n}-{k}", "worker") for k in range(n))))
        for worker in group:
            await worker.wait_first_claim()
        for worker in previous:
            await worker.stop()
        start, cpu0 = time.time(), [w.cpu() for w in group]
        await run_.sample_rss(group, time.monotonic() + args.scaling_seconds)
        end = time.time()
        cpu = sum(w.cpu() - c for w, c in zip(group, cpu0, strict=True))
        out["scaling"].append(
            {"workers": n, "group": group, "start": start, "end": end, "cpu": cpu}
        )
        out["scaling"][-1]["backlog"] = await run_.backlog(env)
        previous = group
    for worker in previous:
        await worker.stop()


async def phases(env: run_.Env, args: Any, bar: Any, task: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bar.update(task, description=f"seeding {args.sets:,} sets")
    plan = await seed_phase(env, args, out)
    bar.update(task, description="start-up")
    await startup_phase(env, plan, out)
    out["seeded_late_s"] = max(0.0, time.time() - plan.first_due)
    if (wait := plan.first_due - 1.0 - time.time()) > 0:
        await asyncio.sleep(wait)
    bar.update(task, description=f"main window: {args.workers} workers + load")
    workers = await main_phase(env, args, plan, out)
    if args.kill:
        bar.update(task, description="SIGKILL one worker")
        workers = await kill_phase(env, plan, workers, out, window=args.kill_in_window)
    load = out["main"]["load"]
    out["load_result"] = await load.finish(timeout=max(30.0, out["main"]["end"] - time.time() + 60))
    await scaling_phase(
        env, args, workers, out, progress=lambda text: bar.update(task, description=text)
    )
    out["end"] = time.time()
    bar.update(task, description="reading the record")
    out["journal"] = await run_.fetch_journal(env)
    out["stats_end"] = await common.sandbox_stats(env.http, env.sandbox_url)
    out["stored"] = await run_.check_stored(env, plan)
    return out


async def run(args: Any) -> dict[str, Any]:
    ttl = plan_.lifetime_for(args.sets, args.rate, POLICY)
    if args.seconds is None:
        args.seconds = 20.0 if args.quick else ttl * 1.05
    sso = str(plan_.SSO_SECONDS)
    sandbox = common.sandbox_command(
        "--keycloak-access-ttl",
        str(ttl),
        "--sso-idle",
        sso,
        "--sso-max",
        sso,
        "--keycloak-max-reuse",
        str(args.max_reuse),
    )
    with (
        common.progress() as bar,
        tempfile.TemporaryDirectory(prefix="aiofinaccess-fleet-") as tmp,
    ):
        task = bar.add_task("fleet", total=None)
        async with (
            common.store_server(args.store) as store_url,
            common.serve(sandbox, name="sandbox") as server,
            aiohttp.ClientSession() as http,
        ):
            env = run_.Env(store_url, server.url, http, args.keep or Path(tmp))
            env.sandbox_pid = server.pid
            env.store_pid = await store_.server_pid(store_url)
            try:
                out = await phases(env, args, bar, task)
            finally:
                await env.cleanup()
            if args.keep is not None:
                plan = out["plan"]
                keep = {"journal": out["journal"], "plan": vars(plan), "main": out["main"]["start"]}
                (args.keep / "run.json").write_text(json.dumps(keep, default=str))
            out["store_url"] = store_url
            out["close_hung"] = sum(int(c.final.get("close_hung", 0)) for c in env.children)
            out["records"] = {
                c.name: plan_.parse_record(c.name, c.record.read_text()) for c in env.children
            }
        bar.update(task, description="done", total=1, completed=1)
    return out


def main() -> None:
    import _fleet_report as report  # noqa: PLC0415  (figures and tables)

    parser = common.parser(__doc__)
    parser.add_argument("--store", choices=("redis", "postgres"), default="redis")
    parser.add_argument("--sets", type=int, help="token sets M (100,000; quick 10,000)")
    parser.add_argument("--workers", type=int, default=4, help="duty workers N in the main window")
    parser.add_argument("--rate", type=float, default=300.0, help="renewals per second to aim at")
    parser.add_argument("--seconds", type=float, help="main window (one lifetime; quick 20)")
    parser.add_argument("--requests", type=int, help="load requests in the main window (M)")
    parser.add_argument("--scaling", type=int, nargs="+", default=[1, 2, 4], help="group sizes")
    parser.add_argument("--scaling-seconds", type=float, help="per group (40; quick 8)")
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="skip the SIGKILL")
    parser.add_argument(
        "--kill-in-window",
        action="store_true",
        help="SIGKILL the worker while a refresh answer it got is not stored yet",
    )
    parser.add_argument(
        "--max-reuse",
        type=int,
        default=0,
        help="the sandbox Keycloak's Refresh Token Max Reuse (0, Keycloak's default)",
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the processes' records here")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    args.sets = args.sets or (10_000 if args.quick else 100_000)
    args.requests = args.sets if args.requests is None else args.requests
    args.scaling_seconds = args.scaling_seconds or (8.0 if args.quick else 40.0)
    if not (100 <= args.sets <= 1_000_000 and 1 <= args.workers <= 16 and args.rate > 0):
        parser.error("need 100 <= sets <= 1,000,000, 1 <= workers <= 16, rate > 0")
    if args.kill and args.workers < 2:
        parser.error("the SIGKILL phase needs at least 2 workers (or --no-kill)")
    started = time.monotonic()
    info = common.machine()
    out = asyncio.run(run(args))
    report.publish(NAME, args, info, out, started)


if __name__ == "__main__":
    main()
