"""Cost of the fresh-token path: ``SessionManager.access_token`` against a bare dict lookup.

    .venv/bin/python benchmarks/fresh_path.py [--quick] [--json PATH] [--calls N] [--rounds R]

The fresh path is what every authorized request pays. This measures it in one process, side by
side with the cheapest possible alternative (a dict lookup in a coroutine), in R alternating
rounds of N calls each, and reports the medians and their ratio (machine noise cancels). No
server is involved: the token is fresh for an hour.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import _common as common

from aiofinaccess import ClientCredentials, Oidc, SessionManager, TokenSet

NAME = "fresh_path"


async def measure(calls: int, rounds: int, bar: Any) -> tuple[list[float], list[float]]:
    provider = Oidc.endpoints(name="bench", token_url="https://idp.example.com/token")
    sdk: list[float] = []
    baseline: list[float] = []
    task = bar.add_task("fresh path", total=rounds)
    async with SessionManager() as manager:
        manager.register(provider, ClientCredentials("c", "s"))
        now = time.time()
        await manager.store_token_set(
            "bench", "user", TokenSet(access_token="AT", issued_at=now, expires_at=now + 3600)
        )
        table = {("bench", "user"): "AT"}

        async def raw(key: tuple[str, str]) -> str:
            return table[key]

        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                await manager.access_token("bench", "user")
            sdk.append((time.perf_counter() - start) / calls)
            start = time.perf_counter()
            for _ in range(calls):
                await raw(("bench", "user"))
            baseline.append((time.perf_counter() - start) / calls)
            bar.advance(task)
    return sdk, baseline


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--calls", type=int, help="calls per round (default 200,000; quick 50,000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 7; quick 3)")
    args = parser.parse_args()
    calls = args.calls or (50_000 if args.quick else 200_000)
    rounds = args.rounds or (3 if args.quick else 7)
    if not (1 <= calls <= 10_000_000 and 1 <= rounds <= 100):
        parser.error("need 1 <= calls <= 10,000,000 and 1 <= rounds <= 100")
    run = common.Run(NAME, args)

    async def measured() -> tuple[list[float], list[float]]:
        with common.progress() as bar:
            return await measure(calls, rounds, bar)

    sdk, baseline = asyncio.run(measured())
    sdk_ns = statistics.median(sdk) * 1e9
    baseline_ns = statistics.median(baseline) * 1e9
    figures = {
        "sdk_ns_per_call": sdk_ns,
        "baseline_ns_per_call": baseline_ns,
        "ratio_sdk_baseline": common.ratio(sdk_ns, baseline_ns),
    }
    parameters = {"calls_per_round": calls, "rounds": rounds, "statistic": "median"}
    run.header(parameters)
    common.stdout.print(
        common.table(
            f"median of {rounds} rounds of {calls:,} calls",
            ["path", "ns/call"],
            [
                ["access_token (fresh)", sdk_ns],
                ["dict lookup in a coroutine", baseline_ns],
                ["ratio sdk / baseline", figures["ratio_sdk_baseline"]],
            ],
        )
    )
    run.finish(parameters, figures)


if __name__ == "__main__":
    main()
