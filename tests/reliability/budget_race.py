"""The unattended-update budget under racing processes: never more than ``limit`` slots per
connection in any window, however the fleet's takes interleave.

Four worker processes (:mod:`tests.reliability.budget_worker`) share one store and try every
connection, round after round, in the same order, starting together. With a window longer
than the run (24 h, the real one) every connection must end with exactly ``limit`` slots
(more: a lost update of the count; fewer: a slot never handed out). With a short window
(``--window 0.5``) slots free as the run goes on, and no ``limit + 1`` slots of one connection
may fall within one window: a violation is counted when ``limit + 1`` slots were all taken
between the first one's "before" and the last one's "after" less than a window apart, so a
slow take never passes for one.

    python -m tests.reliability.budget_race --store sqlite --connections 200 --rounds 20
    python -m tests.reliability.budget_race --store redis --window 0.5 --rounds 400
    python -m tests.reliability.budget_race --store racy  # a broken build, to see it caught

The suite runs short races (tests/reliability/test_budget_race.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import attrs

from aiofinaccess.connections import UpdateBudget
from tests.reliability.budget_worker import open_store

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4


@attrs.frozen
class Race:
    """What a race showed."""

    attempts: int
    granted: int
    refused: int
    #: Per connection, how many slots it got.
    most: int
    fewest: int
    #: Sets of ``limit + 1`` slots of one connection certainly within one window.
    violations: int
    #: The whole race, the processes' start included.
    seconds: float


def violations(slots: list[tuple[float, float]], limit: int, window: float) -> int:
    """How many runs of ``limit + 1`` slots (by their ``before`` times) were certainly all
    taken within one window: the last one's ``after`` less than a window past the first
    one's ``before``."""
    slots = sorted(slots)
    return sum(
        1
        for i in range(len(slots) - limit)
        if max(after for _, after in slots[i : i + limit + 1]) - slots[i][0] < window
    )


async def _prepare(spec: str) -> None:
    store = open_store(spec)
    try:
        await store.take_update("prepare", limit=1, window=1)  # type: ignore[attr-defined]
    finally:
        await store.aclose()


def race(spec: str, *, connections: int, rounds: int, budget: UpdateBudget, logs: Path) -> Race:
    """Run the fleet to its end on ``spec`` (an empty store) and read its logs."""
    asyncio.run(_prepare(spec))  # tables made once, before the fleet opens them
    started = time.monotonic()
    args = [str(connections), str(rounds), str(budget.limit), repr(budget.window), str(WORKERS)]
    worker = [sys.executable, "-m", "tests.reliability.budget_worker", spec]
    fleet = [
        subprocess.Popen(  # noqa: S603  (our own module, our own arguments)
            [*worker, str(logs / f"{n}.log"), *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for n in range(WORKERS)
    ]
    for worker in fleet:
        if worker.wait(timeout=600) != 0:
            raise RuntimeError(f"a budget worker failed ({worker.returncode})")
    seconds = time.monotonic() - started
    slots: dict[int, list[tuple[float, float]]] = defaultdict(list)
    refused = 0
    for n in range(WORKERS):
        for line in (logs / f"{n}.log").read_text().splitlines():
            kind, *fields = line.split()
            if kind == "G":
                slots[int(fields[0])].append((float(fields[1]), float(fields[2])))
            else:
                refused += int(fields[0])
    counts = [len(slots[n]) for n in range(connections)]
    return Race(
        attempts=WORKERS * connections * rounds,
        granted=sum(counts),
        refused=refused,
        most=max(counts),
        fewest=min(counts),
        violations=sum(violations(s, budget.limit, budget.window) for s in slots.values()),
        seconds=seconds,
    )


@contextlib.contextmanager
def store_spec(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh store of ``kind`` for one race (a server started for it, if needed)."""
    if kind in ("sqlite", "racy"):
        yield f"{'racy:' if kind == 'racy' else ''}{tmp / 'tokens.db'}"
    elif kind == "postgres":
        from tests.support.postgres_server import running_postgres  # noqa: PLC0415

        with running_postgres() as server:
            yield f"{server.url}#budget_race"
    else:
        yield from _redis()


def _redis() -> Iterator[str]:
    from tests.support.redis_server import running_redis  # noqa: PLC0415

    loop = asyncio.new_event_loop()
    server = running_redis()
    try:
        yield loop.run_until_complete(server.__aenter__())
    finally:
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="The update budget under racing processes.")
    stores = ("sqlite", "redis", "postgres", "racy")  # racy: the broken build (SQLite)
    parser.add_argument("--store", choices=stores, default="sqlite")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--window", type=float, default=86_400.0)
    options = parser.parse_args()
    budget = UpdateBudget(limit=options.limit, window=options.window)
    with tempfile.TemporaryDirectory() as tmp, store_spec(options.store, Path(tmp)) as spec:
        result = race(
            spec,
            connections=options.connections,
            rounds=options.rounds,
            budget=budget,
            logs=Path(tmp),
        )
    print(f"{options.store}, {WORKERS} processes, window {options.window:g} s: {result}")  # noqa: T201


if __name__ == "__main__":
    main()
