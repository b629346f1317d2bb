"""N token sets in one SessionManager with its scheduler on, renewed at about 300 a second.

    .venv/bin/python benchmarks/many_sessions.py [--quick] [--json PATH]
        [--sessions N [N ...]] [--seconds D] [--rate R] [--memory-only]

For each N (default 10,000 and 100,000; quick 2,000 and 10,000) a fresh sandbox runs in a
helper process (``_sandbox_host.py``) with N Keycloak sessions seeded, and the benchmark writes
the matching N token sets straight into the manager's ``MemoryStore`` and restores them
(``manager.restore()``): no login page, no token request. Their expiries are spread evenly so
that the scheduler's renewals start at once at the steady rate N / (lifetime - lead), where the
lifetime is the integer number of seconds that brings the rate nearest to ``--rate`` under the
default ``RefreshPolicy`` (lead 20 % of the lifetime, jitter up to 20 % of the lead). Every
renewal is a real refresh-token rotation against the sandbox.

Figures, per N, over a window of D seconds (default 60; quick 10):

* ``held_bytes_beyond_tokens``: what the manager holds per set (``held_bytes_per_set``: the
  registry entry, the token set with its token strings, key, deadlines, scheduler item) less
  the 3,300 token characters of a Keycloak-sized set, by tracemalloc over N such sets restored
  into a manager of their own before the sandbox starts (``_held_set.py``);
  ``store_record_bytes_per_set`` is the MemoryStore's record on top. ``--memory-only`` measures
  just that and lists what a held set is made of;
* ``refreshes``: the sandbox's refresh-grant counter over the window;
* ``lateness_p50_ms``/``lateness_p99_ms``: the scheduler's own record of actual minus planned
  renewal start (``manager._scheduler.lateness``, seconds; every value of the window is kept);
* ``expired_served``: 20 random sets every 20 ms go through ``access_token()``; each token and
  the wall time it was handed out are sent to the sandbox, which counts those it had already
  expired at that time (or does not know). ``expired_served_local`` is the same check against
  the SDK's own ``expires_at``;
* ``cpu_percent``: this process's CPU time over the window (100 = one core busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import _common as common
import _held_set
import aiohttp
from rich.markup import escape

from aiofinaccess import ClientCredentials, Everifin, RefreshPolicy, Schedule, SessionManager
from aiofinaccess.core.tokens import Anchor, TokenKey, parse_token_response
from aiofinaccess.stores.memory import MemoryStore

NAME = "many_sessions"
POLICY = RefreshPolicy()  # the default: this benchmark measures the manager as shipped
JITTER = 0.2  # SessionManager's default
SAMPLES_PER_TICK = 20
SAMPLE_EVERY = 0.02
VERIFY_EVERY = 0.25
REFRESH_IDLE = 36000


def lifetime_for(sessions: int, rate: float) -> int:
    """The whole-second token lifetime that renews ``sessions`` sets nearest ``rate`` per s."""

    def interval(ttl: int) -> float:  # mean time between renewals of one set
        return ttl - POLICY.lead(ttl) * (1 + JITTER / 2)

    return min(range(3, 100_000), key=lambda ttl: abs(sessions / interval(ttl) - rate))


def seed_body(nonce: str, index: int, ttl: int) -> dict[str, Any]:
    """A token response shaped exactly like the sandbox's (so the set is as big as a real one)."""
    access, refresh = common.seeded_tokens(nonce, index)
    return {
        "access_token": access,
        "expires_in": ttl,
        "refresh_expires_in": REFRESH_IDLE,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": common.seeded_session_id(nonce, index),
        "scope": "ais",
    }


@dataclass(frozen=True)
class Plan:
    """One size's token lifetime and the seeded expiries, shared with the sandbox host."""

    sessions: int
    ttl: int
    lead: float
    spread: float
    first: float
    window_start: float
    nonce: str

    @classmethod
    def make(cls, sessions: int, rate: float) -> Plan:
        ttl = lifetime_for(sessions, rate)
        lead = POLICY.lead(ttl)
        # Seeding and restoring run before the window opens; allow for them.
        window_start = time.time() + 3.0 + sessions * 120e-6
        return cls(
            sessions=sessions,
            ttl=ttl,
            lead=lead,
            spread=ttl - lead * (1 + JITTER / 2),
            # Renewals start between 1 and 1 + JITTER leads before expiry: centre the first
            # ones on the window's start so the rate is steady from its first second.
            first=window_start + lead * (1 + JITTER / 2),
            window_start=window_start,
            nonce=secrets.token_hex(11),
        )

    def host_command(self) -> list[str]:
        return [
            common.PYTHON,
            str(common.BENCHMARKS / "_sandbox_host.py"),
            "--sessions", str(self.sessions),
            "--nonce", self.nonce,
            "--first", repr(self.first),
            "--spread", repr(self.spread),
            "--ttl", str(self.ttl),
            "--sso-idle", str(REFRESH_IDLE),
        ]  # fmt: skip


async def seed_and_restore(plan: Plan, store: MemoryStore, manager: SessionManager) -> None:
    """Write the plan's token sets into the store and restore them."""
    wall, mono = time.time(), time.monotonic()
    for index in range(plan.sessions):
        issued = common.seeded_expiry(index, first=plan.first, spread=plan.spread) - plan.ttl
        token_set = parse_token_response(
            seed_body(plan.nonce, index, plan.ttl), sent=Anchor(issued, mono - (wall - issued))
        )
        key = TokenKey("everifin", f"user-{index}")
        await store.put(key, token_set, expected_version=None)
    restored = await manager.restore()
    if restored != plan.sessions:
        raise RuntimeError(f"restored {restored} of {plan.sessions} token sets")


@contextlib.contextmanager
def all_lateness(manager: SessionManager) -> Iterator[list[float]]:
    """Every lateness value the scheduler records meanwhile (it keeps the last 4096 only)."""
    scheduler = manager._scheduler
    assert scheduler is not None  # noqa: S101  (the scheduler is on)
    lateness: list[float] = []
    original = scheduler._record_lateness

    def record(late: float) -> None:
        lateness.append(late)
        original(late)

    scheduler._record_lateness = record  # type: ignore[method-assign,assignment]
    try:
        yield lateness
    finally:
        scheduler._record_lateness = original  # type: ignore[method-assign]


async def run_size(
    sessions: int, seconds: float, rate: float, bar: Any, task: Any
) -> dict[str, Any]:
    label = f"{sessions:,} sessions"
    bar.update(task, description=f"{label}: memory")
    memory = await _held_set.measure(sessions)
    del memory["breakdown"]
    plan = Plan.make(sessions, rate)
    bar.update(task, description=f"{label}: seeding")
    async with (
        common.serve(plan.host_command(), name="sandbox host") as server,
        aiohttp.ClientSession() as control,
    ):
        store = MemoryStore()
        async with SessionManager(
            store=store, policy=POLICY, schedule=Schedule(jitter=JITTER)
        ) as manager:
            manager.register(
                Everifin.at(server.url + "/auth", server.url),
                ClientCredentials(
                    common.SANDBOX.everifin_client_id, common.SANDBOX.everifin_client_secret
                ),
            )
            seeding = time.monotonic()
            await seed_and_restore(plan, store, manager)
            seed_seconds = time.monotonic() - seeding
            late_start = plan.window_start - time.time()
            if late_start > 0:
                bar.update(task, description=f"{label}: waiting for the window")
                await asyncio.sleep(late_start)
            with all_lateness(manager) as lateness, common.gc_pauses() as pauses:
                before = await common.sandbox_stats(control, server.url)
                stats_before = manager.stats.as_dict()
                cpu, host_cpu = common.cpu_seconds(), server.cpu_seconds()
                started = time.monotonic()
                bar.update(task, description=f"{label}: renewing")
                sampled = await sample(
                    manager, control, server.url, sessions=sessions, deadline=started + seconds
                )
                elapsed = time.monotonic() - started
                cpu_used = common.cpu_seconds() - cpu
                host_cpu_used = server.cpu_seconds() - host_cpu
            after = await common.sandbox_stats(control, server.url)
            stats = manager.stats.as_dict()
            rss_end = common.rss_bytes()
    refreshes = common.refresh_calls(after) - common.refresh_calls(before)
    return {
        "sessions": sessions,
        "token_lifetime_s": plan.ttl,
        "lead_s": plan.lead,
        "planned_rate_per_s": sessions / plan.spread,
        **memory,
        "rss_mib_end": rss_end / 2**20,
        "seed_and_restore_s": seed_seconds,
        "seeded_late_s": max(0.0, -late_start),
        "window_s": elapsed,
        "refreshes": refreshes,
        "refresh_rate_per_s": refreshes / elapsed,
        "scheduled_renewals": stats["scheduled_renewals"] - stats_before["scheduled_renewals"],
        "refresh_failures": stats["refresh_failures"] - stats_before["refresh_failures"],
        "lateness_p50_ms": common.percentile(lateness, 50) * 1e3,
        "lateness_p99_ms": common.percentile(lateness, 99) * 1e3,
        "lateness_max_ms": max(lateness, default=float("nan")) * 1e3,
        "lateness_samples": len(lateness),
        "gc_full_collections": sum(1 for generation, _ in pauses if generation == 2),
        "gc_max_pause_ms": max((pause for _, pause in pauses), default=0.0) * 1e3,
        **sampled,
        "cpu_percent": cpu_used / elapsed * 100,
        "sandbox_cpu_percent": host_cpu_used / elapsed * 100,
        "reuse_violations": after["reuse_violations"] - before["reuse_violations"],
        "sandbox_401": common.api_calls(after, 401) - common.api_calls(before, 401),
    }


async def sample(
    manager: SessionManager,
    control: aiohttp.ClientSession,
    base: str,
    *,
    sessions: int,
    deadline: float,
) -> dict[str, Any]:
    """Hand out tokens of random sets until ``deadline``; have the sandbox judge each one."""
    rng = random.Random(7)
    pending: list[tuple[str, float]] = []
    expired = unknown = checked = local_expired = 0
    waits: list[float] = []
    last_verify = time.monotonic()

    async def verify() -> None:
        nonlocal expired, unknown, checked, pending
        batch, pending = pending, []
        if not batch:
            return
        async with control.post(f"{base}/_sandbox/bench-verify", json={"samples": batch}) as r:
            r.raise_for_status()
            verdict = await r.json()
        expired += verdict["expired"]
        unknown += verdict["unknown"]
        checked += verdict["checked"]

    window = deadline - time.monotonic()
    max_ticks = int(window / SAMPLE_EVERY) + 1
    for _ in range(max_ticks):
        now = time.monotonic()
        if now >= deadline:
            break
        for _ in range(SAMPLES_PER_TICK):
            subject = f"user-{rng.randrange(sessions)}"
            asked = time.perf_counter()
            token = await manager.access_token("everifin", subject)
            handed_out = time.time()
            waits.append(time.perf_counter() - asked)
            pending.append((token, handed_out))
            entry = manager._registry.find("everifin", subject)
            token_set = entry.token_set if entry is not None else None
            if (
                token_set is not None
                and token_set.access_token.reveal() == token
                and token_set.expires_at is not None
                and token_set.expires_at <= handed_out
            ):
                local_expired += 1
        if now - last_verify >= VERIFY_EVERY:
            last_verify = now
            await verify()
        await asyncio.sleep(SAMPLE_EVERY)
    await verify()
    return {
        "expired_served": expired + unknown,
        "expired_served_local": local_expired,
        "tokens_sampled": checked,
        "access_token_p99_ms": common.percentile(waits, 99) * 1e3,
    }


TARGETS = (
    common.Target("held_bytes_beyond_tokens", "<=", 512.0),
    common.Target("lateness_p99_ms", "<=", 250.0),
    common.Target("expired_served", "==", 0.0),
)


def memory_only(run: common.Run, parameters: dict[str, Any], sizes: list[int]) -> None:
    """Measure only what a held set costs, with the allocation sites of the largest size."""
    rows = [
        {"sessions": size, **asyncio.run(_held_set.measure(size, breakdown=25))} for size in sizes
    ]
    checked = common.check_rows(rows, "sessions", TARGETS[:1])
    run.header(parameters)
    common.stdout.print(
        common.table(
            "what a held set costs (bytes per set)",
            ["sessions", "held", "beyond tokens", "MemoryStore record"],
            [
                [
                    f"{row['sessions']:,}",
                    row["held_bytes_per_set"],
                    row["held_bytes_beyond_tokens"],
                    row["store_record_bytes_per_set"],
                ]
                for row in rows
            ],
        )
    )
    common.stdout.print(
        common.table(
            f"a held set by allocation site ({sizes[-1]:,} sets)",
            ["bytes", "objects", "site"],
            [
                [site["bytes"], site["objects"], escape(site["site"])]
                for site in rows[-1]["breakdown"]
            ],
        )
    )
    run.finish(parameters, {"rows": rows}, checked)


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--sessions", type=int, nargs="+", help="sizes (10,000 and 100,000)")
    parser.add_argument("--seconds", type=float, help="measured window per size (60; quick 10)")
    parser.add_argument("--rate", type=float, default=300.0, help="renewals per second to aim at")
    parser.add_argument(
        "--memory-only", action="store_true", help="only what a held set costs, and of what"
    )
    args = parser.parse_args()
    sizes = args.sessions or ([2_000, 10_000] if args.quick else [10_000, 100_000])
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    if not all(1 <= n <= 1_000_000 for n in sizes) or not 0 < seconds <= 3600:
        parser.error("sizes must be in 1..1,000,000 and seconds in (0, 3600]")
    parameters = {
        "sizes": sizes,
        "window_s": seconds,
        "target_rate_per_s": args.rate,
        "policy": "RefreshPolicy() (default), jitter 0.2, max_concurrent_refreshes 16",
        "store": "MemoryStore (the default)",
        "memory": f"tracemalloc, {_held_set.TOKEN_CHARS:,} token characters a set",
    }
    run = common.Run(NAME, args)
    if args.memory_only:
        memory_only(run, parameters, sizes)
        return

    async def run_all() -> list[dict[str, Any]]:
        rows = []
        with common.progress() as bar:
            for size in sizes:
                task = bar.add_task(f"{size:,} sessions", total=None)
                rows.append(await run_size(size, seconds, args.rate, bar, task))
                bar.update(task, description=f"{size:,} sessions: done", total=1, completed=1)
        return rows

    rows = asyncio.run(run_all())
    checked = common.check_rows(rows, "sessions", TARGETS)

    run.header(parameters)
    common.stdout.print(
        common.table(
            f"token sets renewed by one manager's scheduler, {seconds:g}-s window",
            [
                "sessions",
                "lifetime s",
                "held B/set",
                "beyond tokens",
                "refreshes",
                "refreshes/s",
                "lateness p50 ms",
                "lateness p99 ms",
                "expired served",
                "sampled",
                "CPU %",
                "sandbox CPU %",
            ],
            [
                [
                    f"{row['sessions']:,}",
                    row["token_lifetime_s"],
                    row["held_bytes_per_set"],
                    row["held_bytes_beyond_tokens"],
                    row["refreshes"],
                    row["refresh_rate_per_s"],
                    row["lateness_p50_ms"],
                    row["lateness_p99_ms"],
                    row["expired_served"],
                    row["tokens_sampled"],
                    row["cpu_percent"],
                    row["sandbox_cpu_percent"],
                ]
                for row in rows
            ],
        )
    )
    run.finish(parameters, {"rows": rows}, checked)


if __name__ == "__main__":
    main()
