"""Cost of the fresh-token path: ``SessionManager.access_token`` against a bare dict lookup.

The fresh path is what every authorized request pays. This measures it in one run, side by
side with the cheapest possible alternative, and prints the ratio (machine noise cancels).

    .venv/bin/python benchmarks/fresh_path.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiofinaccess import ClientCredentials, Oidc, SessionManager, TokenSet


async def _measure(calls: int) -> tuple[float, float]:
    provider = Oidc.endpoints(name="bench", token_url="https://idp.example.com/token")
    async with SessionManager() as manager:
        manager.register(provider, ClientCredentials("c", "s"))
        now = time.time()
        await manager.store_token_set(
            "bench", "user", TokenSet(access_token="AT", issued_at=now, expires_at=now + 3600)
        )
        table = {("bench", "user"): "AT"}

        start = time.perf_counter()
        for _ in range(calls):
            await manager.access_token("bench", "user")
        sdk = time.perf_counter() - start

        async def raw(key: tuple[str, str]) -> str:
            return table[key]

        start = time.perf_counter()
        for _ in range(calls):
            await raw(("bench", "user"))
        baseline = time.perf_counter() - start
    return sdk, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    sdk, baseline = asyncio.run(_measure(args.calls))
    print(f"{'path':<28}{'ns/call':>10}")
    print(f"{'access_token (fresh)':<28}{sdk / args.calls * 1e9:>10.0f}")
    print(f"{'dict lookup in a coroutine':<28}{baseline / args.calls * 1e9:>10.0f}")
    print(f"ratio sdk/baseline: {sdk / baseline:.2f}")


if __name__ == "__main__":
    main()
