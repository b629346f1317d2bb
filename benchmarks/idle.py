"""Renewals per token lifetime when most stored sets are idle (issue 27).

A throwaway ``redis-server``; ``--sets`` token sets (100,000), of which ``--idle-share`` (0.9)
were last used long ago (stamped ``2 * idle_after`` ago) and the rest just now. Every set is
due at once. Two lifetimes run back to back, each until nothing is due: the duty's own claim
loop on the real store (``claim_due`` in batches of 500, then the duty's
:class:`~aiofinaccess.session.idle.IdleGate` on the batch, as ``DutyLoop`` runs it), with the
renewal itself replaced by what it leaves in the store: a later due time (``reschedule``),
made due again for the second lifetime. The HTTP exchange is left out: this counts renewals
(and times the claim loop), it does not time renewals.
"Before" runs without the gate (the duty renewed every set), "after" with it.

    python benchmarks/idle.py [--sets 100000] [--idle-share 0.9] [--json out.json]
"""

from __future__ import annotations

import asyncio
import math
import time

import _common as common

from aiofinaccess import RefreshPolicy, Schedule, TokenSet
from aiofinaccess.core.clock import SYSTEM_CLOCK
from aiofinaccess.core.tokens import TokenKey
from aiofinaccess.session.access import StoreAccess
from aiofinaccess.session.hub import ManagerStats
from aiofinaccess.session.idle import IdleGate
from aiofinaccess.session.registry import Registry
from aiofinaccess.stores.redis import RedisStore

IDLE_AFTER = 3600.0
#: Where a renewal puts its set's next due time: past the phase (the next phase makes the
#: renewed sets due again, as one lifetime later).
LATER = 86_400.0
BATCH = 500
CLIENT = TokenKey("everifin", client="bench")


def token_set() -> TokenSet:
    now = time.time()
    return TokenSet(
        access_token="AT",
        refresh_token="RT",
        issued_at=now,
        expires_at=now + 300.0,
        refresh_expires_at=now + 1800.0,
    )


async def seed(store: RedisStore, keys: list[TokenKey], idle_share: float) -> None:
    stored = token_set()
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        await asyncio.gather(
            *(store.put(key, stored, expected_version=None, due_at=1.0) for key in batch)
        )
    idle = math.floor(len(keys) * idle_share)
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        await store.mark_used(
            {key: 2 * IDLE_AFTER if n + start < idle else 0.0 for n, key in enumerate(batch)}
        )


async def lifetime(store: RedisStore, gate: IdleGate | None) -> list[TokenKey]:
    """Run the duty's claims until nothing is due; the sets it renewed."""
    renewed: list[TokenKey] = []
    while keys := await store.claim_due(
        limit=BATCH, claim_for=60.0, owner="bench", clients=[CLIENT]
    ):
        renew = list(keys) if gate is None else await gate.sift(list(keys))
        due = time.time() + LATER
        await asyncio.gather(*(store.reschedule(key, due) for key in renew))
        renewed += renew
    return renewed


async def measure(url: str, sets: int, idle_share: float, *, gated: bool) -> dict[str, float]:
    store = RedisStore(url, prefix=f"idle-{'after' if gated else 'before'}:")
    try:
        keys = [TokenKey("everifin", f"user-{n:06d}") for n in range(sets)]
        await seed(store, keys, idle_share)
        stats = ManagerStats()
        schedule = Schedule(idle_after=IDLE_AFTER)
        access = StoreAccess(
            store=store,
            registry=Registry(),
            clock=SYSTEM_CLOCK,
            policy=RefreshPolicy(),
            timeout=60.0,
            stats=stats,
            duty=schedule,
        )
        gate = IdleGate(access=access, clock=SYSTEM_CLOCK, schedule=schedule, stats=stats)
        figures: dict[str, float] = {}
        for n in (1, 2):
            started = time.perf_counter()
            renewed = await lifetime(store, gate if gated else None)
            figures[f"renewals_lifetime_{n}"] = len(renewed)
            figures[f"seconds_lifetime_{n}"] = time.perf_counter() - started
            for start in range(0, len(renewed), BATCH):  # a lifetime on: due again
                batch = renewed[start : start + BATCH]
                await asyncio.gather(*(store.reschedule(key, 1.0) for key in batch))
        figures["left_idle"] = stats.duty_idle
        figures["on_the_duty_after"] = await store.due_count(now=time.time() + 2 * LATER)
        return figures
    finally:
        await store.aclose()


async def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--sets", type=int, default=100_000)
    parser.add_argument("--idle-share", type=float, default=0.9)
    args = parser.parse_args()
    sets = 5_000 if args.quick else args.sets
    async with common.redis_server() as url:
        before = await measure(url, sets, args.idle_share, gated=False)
        after = await measure(url, sets, args.idle_share, gated=True)
    rows = [[name, common.fmt(before[name]), common.fmt(after[name])] for name in before]
    common.stdout.print(
        common.table(
            f"{sets:,} sets, {args.idle_share:.0%} idle: renewals per lifetime",
            ["figure", "before (no idle gate)", "after"],
            rows,
        )
    )
    common.write_json(
        args.json,
        {
            "sets": sets,
            "idle_share": args.idle_share,
            "before": before,
            "after": after,
            "machine": common.machine(),
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
