"""Cost of ``Replication``: ``RedisStore.put`` with and without waiting for a replica.

    .venv/bin/python benchmarks/replicated_writes.py [--quick] [--json PATH] [--writes N]
        [--rounds R] [--concurrency C]

A primary and its replica (two throwaway ``redis-server`` processes on loopback), one store
each way on the same primary: R alternating rounds of N compare-and-swap writes of a rotated
set, one after another (latency), then the same with C writers at once (throughput). Reports
the medians per write and the ratio with / without. The cost is ``WAIT``'s round trip to the
replica and back; across machines add the network's.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import _common as common
import redis.asyncio as aioredis

from aiofinaccess import RedisStore, StoreError, TokenKey, TokenSet
from aiofinaccess.stores import Replication

NAME = "replicated_writes"


def rotated(n: int) -> TokenSet:
    now = time.time()
    return TokenSet(
        access_token=f"AT-{n}-" + "a" * 1200,
        refresh_token=f"RT-{n}-" + "r" * 800,
        issued_at=now,
        expires_at=now + 300,
    )


async def writes(store: RedisStore, count: int, concurrency: int) -> float:
    """Seconds per write: ``count`` rotations spread over ``concurrency`` new keys at once."""
    keys = [TokenKey("bench", f"{n}-{uuid.uuid4().hex}") for n in range(concurrency)]
    versions = {key: await store.put(key, rotated(0), expected_version=None) for key in keys}

    async def writer(key: TokenKey, n: int) -> None:
        for step in range(n):
            versions[key] = await store.put(key, rotated(step), expected_version=versions[key])

    start = time.perf_counter()
    await asyncio.gather(*(writer(key, count // concurrency) for key in keys))
    return (time.perf_counter() - start) / (count // concurrency * concurrency)


async def measure(count: int, rounds: int, concurrency: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {
        "plain": [],
        "replicated": [],
        "plain_c": [],
        "replicated_c": [],
    }
    async with common.redis_server() as primary, common.redis_server() as replica_url:
        replica = aioredis.Redis.from_url(replica_url)
        await replica.execute_command("CONFIG", "SET", "repl-diskless-sync-delay", "0")
        port = int(primary.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
        await replica.replicaof("127.0.0.1", port)
        prefix = f"bench-{uuid.uuid4().hex[:6]}:"
        plain = RedisStore(primary, prefix=prefix)
        replicated = RedisStore(primary, prefix=prefix, replication=Replication(timeout=5.0))
        while True:  # until the replica is streamed to (after its first acknowledgement)
            try:
                await replicated.put(TokenKey("b", "probe"), rotated(0), expected_version=None)
                break
            except StoreError:
                await asyncio.sleep(0.2)
        with common.progress() as bar:
            task = bar.add_task("writes", total=rounds)
            for _ in range(rounds):
                found["plain"].append(await writes(plain, count, 1))
                found["replicated"].append(await writes(replicated, count, 1))
                found["plain_c"].append(await writes(plain, count, concurrency))
                found["replicated_c"].append(await writes(replicated, count, concurrency))
                bar.advance(task)
        await plain.aclose()
        await replicated.aclose()
        await replica.aclose()
    return found


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--writes", type=int, help="writes per round (default 5,000; quick 1,000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 7; quick 3)")
    parser.add_argument("--concurrency", type=int, default=32, help="writers at once (32)")
    args = parser.parse_args()
    count = args.writes or (1_000 if args.quick else 5_000)
    rounds = args.rounds or (3 if args.quick else 7)
    if not (args.concurrency <= count <= 1_000_000 and 1 <= rounds <= 100):
        parser.error("need concurrency <= writes <= 1,000,000 and 1 <= rounds <= 100")
    run = common.Run(NAME, args)
    found = asyncio.run(measure(count, rounds, args.concurrency))
    us = {name: statistics.median(values) * 1e6 for name, values in found.items()}
    figures = {
        "put_us_plain": us["plain"],
        "put_us_replicated": us["replicated"],
        "ratio_replicated_plain": common.ratio(us["replicated"], us["plain"]),
        "put_us_plain_concurrent": us["plain_c"],
        "put_us_replicated_concurrent": us["replicated_c"],
        "ratio_replicated_plain_concurrent": common.ratio(us["replicated_c"], us["plain_c"]),
    }
    parameters = {"writes_per_round": count, "rounds": rounds, "concurrency": args.concurrency}
    run.header(parameters)
    common.stdout.print(
        common.table(
            f"median of {rounds} rounds of {count:,} writes (µs per write)",
            ["writers", "plain", "Replication(replicas=1)", "ratio"],
            [
                ["1", us["plain"], us["replicated"], figures["ratio_replicated_plain"]],
                [
                    str(args.concurrency),
                    us["plain_c"],
                    us["replicated_c"],
                    figures["ratio_replicated_plain_concurrent"],
                ],
            ],
        )
    )
    run.finish(parameters, figures)


if __name__ == "__main__":
    main()
