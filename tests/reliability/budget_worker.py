"""A fleet member for the budget race: try unattended updates of every connection, round after
round, and log each slot it got.

    python -m tests.reliability.budget_worker STORE LOG CONNECTIONS ROUNDS LIMIT WINDOW WORKERS

``STORE`` is a SQLite path, a ``redis://`` or a ``postgresql://`` URL (``#schema`` after a
PostgreSQL URL names the schema), or ``racy:`` and a SQLite path: a broken store that reads
the slots and writes them back in two statements, for the race to catch. Once connected, the
worker leaves ``LOG.ready`` and waits for ``WORKERS`` of them in LOG's directory, so that the
fleet starts together; it visits the connections in the same order as every other worker (so
they collide), and writes one line per slot it got, ``G connection before after`` (its wall
clock just before and just after the take), then ``R refused`` at the end.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from aiofinaccess import PostgresStore, RedisStore, SQLiteStore
from aiofinaccess.connections import ConnectionRegistry, UpdateBudget
from aiofinaccess.core.clock import SYSTEM_CLOCK
from aiofinaccess.core.update_budget import counted, next_slot
from aiofinaccess.errors import UpdateBudgetExhausted
from aiofinaccess.stores import TokenStore


class RacySQLiteStore(SQLiteStore):
    """A broken build: the count is read, then written, with others' takes in between."""

    async def take_update(self, name: str, *, limit: int, window: float) -> float | None:
        _, rows = await self._execute("SELECT taken FROM update_budgets WHERE name = ?", (name,))
        now = time.time()
        taken = counted(json.loads(rows[0][0]) if rows else (), now, window)
        await asyncio.sleep(0.01)
        wait = next_slot(taken, now, limit=limit, window=window)
        if wait is None:
            await self._execute(
                "INSERT INTO update_budgets (name, taken) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET taken = excluded.taken",
                (name, json.dumps([*taken, now])),
            )
        return wait


def open_store(spec: str) -> TokenStore:
    """The store a spec names (see the module docstring)."""
    if spec.startswith("racy:"):
        return RacySQLiteStore(spec.removeprefix("racy:"))
    if spec.startswith("redis://"):
        return RedisStore(spec)
    if spec.startswith("postgresql://"):
        url, _, schema = spec.partition("#")
        return PostgresStore(url, schema=schema or "aiofinaccess")
    return SQLiteStore(spec)


async def main(
    spec: str, log: Path, *, connections: int, rounds: int, budget: UpdateBudget, workers: int
) -> None:
    store = open_store(spec)
    registry = ConnectionRegistry(store, SYSTEM_CLOCK, budget=budget)
    lines, refused = [], 0
    try:
        await registry.list(provider="none")  # connected before the start
        log.with_suffix(".ready").touch()
        while len(list(log.parent.glob("*.ready"))) < workers:  # noqa: ASYNC110  (other processes)
            await asyncio.sleep(0.005)
        for _ in range(rounds):
            for n in range(connections):
                before = time.time()
                try:
                    await registry.take_unattended_update("finapi", f"user-{n}", str(n))
                except UpdateBudgetExhausted:
                    refused += 1
                    continue
                lines.append(f"G {n} {before!r} {time.time()!r}\n")
    finally:
        await store.aclose()
    log.write_text("".join([*lines, f"R {refused}\n"]), encoding="utf-8")  # noqa: ASYNC240


if __name__ == "__main__":
    spec, log, connections, rounds, limit, window, workers = sys.argv[1:8]
    budget = UpdateBudget(limit=int(limit), window=float(window))
    asyncio.run(
        main(
            spec,
            Path(log),
            connections=int(connections),
            rounds=int(rounds),
            budget=budget,
            workers=int(workers),
        )
    )
