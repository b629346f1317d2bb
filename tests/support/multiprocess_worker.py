"""One worker process of the multi-process tests: a manager, its scheduler, and a request load.

    python -m tests.support.multiprocess_worker STORE BASE_URL USERS SECONDS CLIENT_ID CLIENT_SECRET

STORE is ``sqlite:/path/to/file`` or ``redis:<url>|<prefix>``. The worker restores every token
set from the shared store, then for SECONDS keeps reading ``/v1/accounts`` for random users
through the SDK, and prints one JSON line with what it saw. Every access token handed out is
sent afterwards, with the wall-clock time it was handed out, to the sandbox, which counts those
already expired then (``handout``): the SDK's promise, judged at hand-out. A ``401`` from
``/v1/accounts`` says less: with tokens of 2 s handed out up to 50 ms before expiry, a request
that waits longer than that for a CPU on a loaded machine arrives late.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter

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
from aiofinaccess.stores import TokenStore

# Renew close to expiry so that one refresh per token lifetime is the whole cost.
POLICY = RefreshPolicy(lead_fraction=0.05, min_lead=0.05, expiry_margin=0.05)
#: Hand-outs per check request (the sandbox reads bodies up to 1 MiB).
CHECK_BATCH = 5000


def open_store(spec: str) -> TokenStore:
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        return SQLiteStore(rest)
    from aiofinaccess.stores.redis import RedisStore  # noqa: PLC0415

    url, _, prefix = rest.partition("|")
    return RedisStore(url, prefix=prefix)


async def main(
    store_spec: str, base_url: str, users: int, seconds: float, *, client_id: str, secret: str
) -> None:
    outcomes: Counter[str] = Counter()
    handed_out: list[tuple[str, float]] = []
    rng = random.Random()
    provider = Everifin.at(base_url + "/auth", base_url)
    async with SessionManager(
        store=open_store(store_spec), policy=POLICY, schedule=Schedule(idle_after=None)
    ) as manager:
        manager.register(provider, ClientCredentials(client_id, secret))
        await manager.restore()
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                user = f"user-{rng.randrange(users)}"
                try:
                    token = await manager.access_token("everifin", user)
                    handed_out.append((token, time.time()))
                except ReauthorizationRequired:
                    outcomes["reauth_required"] += 1
                    continue
                except AiofinaccessError as exc:
                    outcomes[f"error:{type(exc).__name__}"] += 1
                    continue
                async with http.get(
                    base_url + "/v1/accounts", headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    outcomes[f"status:{response.status}"] += 1
                await asyncio.sleep(rng.uniform(0, 0.02))
            verdict: Counter[str] = Counter()
            check = base_url + "/_sandbox/keycloak/access-check"
            for start in range(0, len(handed_out), CHECK_BATCH):
                samples = handed_out[start : start + CHECK_BATCH]
                async with http.post(check, json={"samples": samples}) as response:
                    response.raise_for_status()
                    verdict.update(await response.json())
        stats = manager.stats.as_dict()
    result = {"outcomes": outcomes, "stats": stats, "handout": verdict}
    print(json.dumps(result), flush=True)  # noqa: T201  (the result)


if __name__ == "__main__":
    store_arg, base, count, duration, cid, csecret = sys.argv[1:7]
    asyncio.run(main(store_arg, base, int(count), float(duration), client_id=cid, secret=csecret))
