"""A process of the fleet benchmark (fleet.py starts them; not meant to be run by hand).

    _fleet_worker.py worker --store URL --namespace NAME --sandbox URL --record PATH
    _fleet_worker.py load --store URL --namespace NAME --sandbox URL --record PATH
        --users M --requests R --seconds D [--managers K] [--working-set W]

``worker``: one SessionManager with the refresh duty and nothing else, over the shared store
(Redis or PostgreSQL: ``_fleet_store.py``), until SIGTERM (then a graceful close: pending
writes finish). ``load``: ``R`` requests (``access_token()``) for users drawn without
repetition from the M, spread evenly over D seconds through K serving-only managers with a
bounded working set; every token handed out is sent, with the time it was handed out, to the
sandbox, which counts those already expired.

Both print one JSON line on stdout when ready and one when done, and record what they store
and claim in the ``--record`` file, one line per event, unbuffered (see _fleet_plan.py): a
worker killed with SIGKILL loses nothing it wrote. Only the SDK's public API is used to build
the managers; the store's methods are wrapped on the instance to record calls.
"""

from __future__ import annotations

import time

from aiofinaccess import Duty, Limits

SPAWNED = time.time()  # before the imports: start-up counts them

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import _fleet_plan as plan_  # noqa: E402
import _fleet_store as store_  # noqa: E402
import aiohttp  # noqa: E402

from aiofinaccess import (  # noqa: E402
    AiofinaccessError,
    ClientCredentials,
    Everifin,
    RefreshPolicy,
    SessionManager,
)
from aiofinaccess.core.tokens import TokenKey, TokenSet  # noqa: E402
from aiofinaccess.sandbox import SandboxConfig  # noqa: E402
from aiofinaccess.stores import RefreshDuty  # noqa: E402

POLICY = RefreshPolicy()
PROVIDER = "everifin"
VERIFY_EVERY = 0.5
#: On CPython 3.11 a cancel can be lost inside redis-py (its socket_timeout runs through
#: asyncio.wait_for, which returns the result when the inner call finishes as the cancel
#: arrives: CPython gh-86296, fixed in 3.12), and SessionManager.aclose() then waits forever
#: for its change-feed watcher; the benchmark records that and carries on.
CLOSE_TIMEOUT = 30.0
#: Requests the load process has in flight at most (as a server would bound them).
CONCURRENCY = 64


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class Recorder:
    """Appends event lines to a file with one ``write`` each (survives SIGKILL)."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.first_claim: float | None = None

    def write(self, line: bytes) -> None:
        os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)


def instrument(store: RefreshDuty, recorder: Recorder) -> None:
    """Record every claim, stored renewal and reschedule of ``store`` (wraps its methods)."""
    claim_due, put, reschedule = store.claim_due, store.put, store.reschedule

    async def recorded_claim(*, limit: int, claim_for: float, owner: str, clients: Any) -> Any:
        now = time.time()  # the store's clock (Redis TIME, PostgreSQL's) is this machine's
        keys = await claim_due(limit=limit, claim_for=claim_for, owner=owner, clients=clients)
        if recorder.first_claim is None:
            recorder.first_claim = time.time()
            # Wall time, and CPU time since exec (interpreter, imports, start, first claim).
            recorder.write(f"f {recorder.first_claim:.6f} {time.process_time():.6f}\n".encode())
        indices = [i for i in (plan_.index_of(key.subject) for key in keys) if i is not None]
        if indices:
            recorder.write(plan_.claim_line(time.time(), now + claim_for, indices))
        return keys

    async def recorded_put(
        key: TokenKey,
        token_set: TokenSet,
        *,
        expected_version: int | None,
        due_at: float | None = None,
    ) -> int:
        version = await put(key, token_set, expected_version=expected_version, due_at=due_at)
        index = plan_.index_of(key.subject)
        if index is not None:
            recorder.write(plan_.put_line(time.time(), index, due_at))
        return version

    async def recorded_reschedule(
        key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        await reschedule(key, due_at, expected_version=expected_version)
        index = plan_.index_of(key.subject)
        if index is not None:
            due = "-" if due_at is None else f"{due_at:.6f}"
            recorder.write(f"s {time.time():.6f} {index} {due}\n".encode())

    # Instance attributes shadow the methods: the manager calls these.
    store.claim_due = recorded_claim  # type: ignore[method-assign]
    store.put = recorded_put  # type: ignore[method-assign]
    store.reschedule = recorded_reschedule  # type: ignore[method-assign]


def register(manager: SessionManager, base: str) -> None:
    sandbox = SandboxConfig()
    manager.register(
        Everifin.at(base + "/auth", base),
        ClientCredentials(sandbox.everifin_client_id, sandbox.everifin_client_secret),
    )


def emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


def stop_event() -> asyncio.Event:
    """Set on SIGTERM or SIGINT. SIGUSR1 prints every task's stack to stderr (a hang's why)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def dump() -> None:
        for task in asyncio.all_tasks():
            print(f"-- {task!r}", file=sys.stderr)
            awaited: Any = task.get_coro()
            while awaited is not None:  # the await chain, innermost last
                frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
                if frame is not None:
                    print(f"   {frame.f_code.co_filename}:{frame.f_lineno}", file=sys.stderr)
                awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
        sys.stderr.flush()

    loop.add_signal_handler(signal.SIGUSR1, dump)
    return stop


# -- the duty worker ------------------------------------------------------------------------------


async def worker(args: argparse.Namespace) -> None:
    imported = time.time()
    stop = stop_event()
    recorder = Recorder(args.record)
    store = store_.open_store(args.store, args.namespace)
    instrument(store, recorder)
    manager = SessionManager(store=store, policy=POLICY, duty=Duty(enabled=True))
    register(manager, args.sandbox)
    await manager.start()
    emit({"pid": os.getpid(), "spawned": SPAWNED, "imported": imported, "started": time.time()})
    await stop.wait()
    stopping = time.time()
    hung = not await close(manager)
    emit(
        {
            "stats": manager.stats.as_dict(),
            "first_claim": recorder.first_claim,
            "drain_s": time.time() - stopping,
            "close_hung": hung,
            "rss": rss_bytes(),
        }
    )
    recorder.close()


async def close(manager: SessionManager) -> bool:
    """``aclose()`` within CLOSE_TIMEOUT; False if it hung (see CLOSE_TIMEOUT)."""
    try:
        await asyncio.wait_for(manager.aclose(), CLOSE_TIMEOUT)
    except TimeoutError:
        print("SessionManager.aclose() hung", file=sys.stderr, flush=True)
        return False
    return True


# -- the load process ------------------------------------------------------------------------------


class Load:
    """Requests spread evenly in time over users, through serving-only managers; each token
    handed out goes, with the time it was handed out, to the sandbox in batches."""

    def __init__(self, managers: list[SessionManager], http: aiohttp.ClientSession, base: str):
        self.managers = managers
        self._http = http
        self._url = base + "/_sandbox/keycloak/access-check"
        self.pending: list[tuple[str, float]] = []
        self.verdict: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.waits: list[float] = []
        self.errors: list[str] = []

    async def flush(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            async with self._http.post(self._url, json={"samples": batch}) as response:
                response.raise_for_status()
                self.verdict.update(await response.json())

    async def request(self, n: int, user: int, scheduled: float) -> None:
        """One ``access_token()``; its wait counts from when it was due to be asked."""
        manager = self.managers[n % len(self.managers)]
        try:
            token = await manager.access_token(PROVIDER, plan_.subject(user))
        except AiofinaccessError as exc:
            self.outcomes[type(exc).__name__] += 1
            if len(self.errors) < 20:  # SDK messages name no token
                self.errors.append(f"{time.time():.3f} u{user} {type(exc).__name__}: {exc}")
            return
        self.pending.append((token, time.time()))
        self.waits.append(time.monotonic() - scheduled)
        self.outcomes["ok"] += 1

    async def run(self, users: list[int], seconds: float, stop: asyncio.Event) -> float:
        began = last_verify = time.monotonic()
        gap = seconds / max(1, len(users))
        inflight: set[asyncio.Task[None]] = set()
        for n, user in enumerate(users):
            if stop.is_set():
                break
            scheduled = began + n * gap
            if (delay := scheduled - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            if len(inflight) >= CONCURRENCY:  # a server's bound: later requests queue
                await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.ensure_future(self.request(n, user, scheduled))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            if time.monotonic() - last_verify >= VERIFY_EVERY:
                last_verify = time.monotonic()
                await self.flush()
        if inflight:
            await asyncio.wait(inflight)
        await self.flush()
        return time.monotonic() - began

    def result(self, elapsed: float) -> dict[str, Any]:
        waits = sorted(self.waits)
        return {
            "requests": len(waits),
            "seconds": elapsed,
            "outcomes": dict(self.outcomes),
            "first_errors": self.errors,
            # Handed out expired, or never issued by the sandbox.
            "expired_served": self.verdict["expired"] + self.verdict["unknown"],
            "expired": self.verdict["expired"],
            "unknown": self.verdict["unknown"],
            "checked": self.verdict["checked"],
            "wait_p50_ms": waits[len(waits) // 2] * 1e3 if waits else None,
            "wait_p99_ms": waits[int(len(waits) * 0.99)] * 1e3 if waits else None,
            "stats": [manager.stats.as_dict() for manager in self.managers],
            "rss": rss_bytes(),
        }


async def load(args: argparse.Namespace) -> None:
    stop = stop_event()
    recorder = Recorder(args.record)
    managers = []
    for _ in range(args.managers):  # a manager closes its store: one each
        store = store_.open_store(args.store, args.namespace)
        instrument(store, recorder)
        managers.append(
            SessionManager(
                store=store,
                policy=POLICY,
                duty=Duty(enabled=False),
                limits=Limits(working_set=args.working_set),
            )
        )
    rng = random.Random(11)
    users = rng.sample(range(args.users), min(args.requests, args.users))
    users += [rng.randrange(args.users) for _ in range(args.requests - len(users))]
    async with aiohttp.ClientSession() as http:
        for manager in managers:
            register(manager, args.sandbox)
            await manager.start()
        runner = Load(managers, http, args.sandbox)
        try:
            emit({"pid": os.getpid(), "started": time.time()})
            elapsed = await runner.run(users, args.seconds, stop)
        finally:
            closed = [await close(manager) for manager in managers]
    emit(runner.result(elapsed) | {"close_hung": closed.count(False)})
    recorder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("role", choices=("worker", "load"))
    parser.add_argument("--store", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--managers", type=int, default=2)
    parser.add_argument("--working-set", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(worker(args) if args.role == "worker" else load(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
