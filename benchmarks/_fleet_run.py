"""The moving parts of fleet.py: child processes, seeding, and measuring a window.

Children are ``_fleet_worker.py`` processes (duty workers and the load process). Each prints a
JSON line when ready and one when done; what it claims and stores goes to its record file. The
coordinator reads their CPU time and resident memory from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import _common as common
import _fleet_plan as plan_
import _fleet_store as store_
import aiohttp

from aiofinaccess.core.tokens import TokenKey
from aiofinaccess.stores.postgres import PostgresStore
from aiofinaccess.stores.redis import RedisStore

WORKER = common.BENCHMARKS / "_fleet_worker.py"
PROVIDER = "everifin"
SEED_CONCURRENCY = 64
SANDBOX_BATCH = 5_000  # rows of ~100 bytes: well under the sandbox's 1 MiB body limit


def proc_status(pid: int, field_name: str) -> int:
    """A ``/proc/PID/status`` memory field (``VmRSS``, ``VmHWM``) in bytes; 0 if gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Child:
    """A ``_fleet_worker.py`` process."""

    name: str
    process: asyncio.subprocess.Process
    record: Path
    spawned: float
    errors: IO[bytes]
    ready: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)
    rss_max: int = 0
    cpu_final: float | None = None
    read_to: int = 0
    held: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        """CPU seconds so far (the last reading once the process is gone)."""
        with contextlib.suppress(OSError, IndexError, ValueError):
            self.cpu_final = common.cpu_seconds(self.pid)
        return self.cpu_final or 0.0

    def rss(self) -> int:
        value = proc_status(self.pid, "VmRSS")
        self.rss_max = max(self.rss_max, value)
        return value

    def first_claim(self) -> tuple[float, float] | None:
        """(wall time, CPU seconds since exec) of its first claim, once it made one."""
        with contextlib.suppress(OSError):
            for line in self.record.read_text().splitlines():
                if line.startswith("f "):
                    _, wall, cpu = line.split()
                    return float(wall), float(cpu)
        return None

    def holding(self) -> dict[int, tuple[float, float]]:
        """What it has claimed and not yet stored or rescheduled, per its record so far
        (read on from where the last call stopped)."""
        with self.record.open("rb") as file:
            file.seek(self.read_to)
            text = file.read()
        complete = text[: text.rfind(b"\n") + 1]
        self.read_to += len(complete)
        record = plan_.parse_record(self.name, complete.decode())
        for claim in record.claims:
            for index in claim.indices:
                self.held[index] = (claim.wall, claim.deadline)
        for put in (*record.puts, *record.reschedules):
            self.held.pop(put.index, None)
        return self.held

    def error_tail(self) -> str:
        self.errors.seek(0)
        return self.errors.read()[-3000:].decode(errors="replace")

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None  # noqa: S101  (stdout=PIPE)
        try:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            if self.process.returncode is None:
                self.process.send_signal(signal.SIGUSR1)
                await asyncio.sleep(0.5)
            raise RuntimeError(
                f"{self.name}: no answer in {timeout:.0f} s: {self.error_tail()}"
            ) from None
        if not raw.strip():
            code = await self.process.wait()
            raise RuntimeError(f"{self.name} exited with {code}: {self.error_tail()}")
        result: dict[str, Any] = json.loads(raw)
        return result

    async def wait_first_claim(self, timeout: float = 30.0) -> tuple[float, float]:
        deadline = time.monotonic() + timeout
        while (first := self.first_claim()) is None:
            if time.monotonic() > deadline or self.process.returncode is not None:
                raise RuntimeError(f"{self.name} never claimed: {self.error_tail()}")
            await asyncio.sleep(0.02)
        return first

    async def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """SIGTERM, then its final line (the manager drained)."""
        self.cpu()
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        self.final = await self._line(timeout)
        await self.process.wait()
        return self.final

    async def finish(self, timeout: float) -> dict[str, Any]:
        """Its final line, once it ends on its own; if it has not within ``timeout`` (a load
        that fell behind), SIGTERM stops it asking and it reports what it did, ``late``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.process.wait()), timeout)
        late = self.process.returncode is None
        if late:
            self.cpu()
            self.process.send_signal(signal.SIGTERM)
        self.final = await self._line(60.0) | {"late": late}
        self.cpu()
        await self.process.wait()
        return self.final

    def kill(self) -> float:
        """SIGKILL; the wall time it was sent."""
        self.cpu()
        self.process.send_signal(signal.SIGKILL)
        return time.time()


@dataclass
class Env:
    """The servers every phase uses, and where the children write."""

    store_url: str
    sandbox_url: str
    http: aiohttp.ClientSession
    workdir: Path
    namespace: str = "fleet"
    #: The servers' process ids (for their CPU time).
    sandbox_pid: int = 0
    store_pid: int = 0
    children: list[Child] = field(default_factory=list)

    def store(self, namespace: str | None = None) -> RedisStore | PostgresStore:
        return store_.open_store(self.store_url, namespace or self.namespace)

    async def spawn(
        self, name: str, role: str, *options: str, namespace: str | None = None
    ) -> Child:
        """Start a child; return once it printed its ready line."""
        record = self.workdir / f"{name}.record"
        # Beside the record (kept with --keep): a hang's stacks (SIGUSR1) outgrow the tail.
        errors = (self.workdir / f"{name}.stderr").open("w+b")
        command = [
            common.PYTHON, str(WORKER), role,
            "--store", self.store_url, "--namespace", namespace or self.namespace,
            "--sandbox", self.sandbox_url,
            "--record", str(record), *options,
        ]  # fmt: skip
        spawned = time.time()
        process = await asyncio.create_subprocess_exec(
            *command, cwd=common.ROOT, stdout=asyncio.subprocess.PIPE, stderr=errors
        )
        child = Child(name, process, record, spawned, errors)
        self.children.append(child)
        child.ready = await child._line(120.0)
        return child

    async def cleanup(self) -> None:
        for child in self.children:
            if child.process.returncode is None:
                child.process.kill()
                await child.process.wait()
            child.errors.close()


async def backlog(env: Env) -> int:
    """Sets due now and not claimed (``due_count``): work the fleet has not kept up with."""
    store = env.store()
    try:
        return await store.due_count(now=time.time())
    finally:
        await store.aclose()


def servers_cpu(env: Env) -> dict[str, float]:
    return {
        "sandbox": common.cpu_seconds(env.sandbox_pid),
        "store": store_.server_cpu(env.store_pid),
    }


async def seed_sandbox(env: Env, plan: plan_.Plan) -> None:
    url = env.sandbox_url + "/_sandbox/keycloak/sessions"
    for start in range(0, plan.sets, SANDBOX_BATCH):
        rows = [plan.sandbox_row(i) for i in range(start, min(plan.sets, start + SANDBOX_BATCH))]
        async with env.http.post(url, json={"sessions": rows}) as response:
            if response.status != 200:
                raise RuntimeError(f"seeding the sandbox failed: {await response.text()}")


async def seed_store(store: RedisStore | PostgresStore, plan: plan_.Plan) -> None:
    """The plan's sets with their due times, ``SEED_CONCURRENCY`` writes in flight."""
    indices = iter(range(plan.sets))

    async def writer() -> None:
        for index in indices:
            key = TokenKey(PROVIDER, plan_.subject(index))
            await store.put(
                key, plan.token_set(index), expected_version=None, due_at=plan.due(index)
            )

    await asyncio.gather(*(writer() for _ in range(SEED_CONCURRENCY)))


async def sample_rss(children: Sequence[Child], until: float, every: float = 1.0) -> None:
    """Keep each child's peak RSS up to date until the monotonic ``until``."""
    while time.monotonic() < until:
        for child in children:
            child.rss()
        await asyncio.sleep(min(every, max(0.0, until - time.monotonic())))


def records(children: Sequence[Child]) -> list[plan_.Record]:
    return [plan_.parse_record(child.name, child.record.read_text()) for child in children]


class JournalTail:
    """Reads the sandbox's refresh journal on from where the last read stopped."""

    def __init__(self, env: Env) -> None:
        self._env = env
        self.offset = 0

    async def read(self) -> list[list[Any]]:
        """The entries since the last read, every page of them."""
        entries: list[list[Any]] = []
        url = self._env.sandbox_url + "/_sandbox/keycloak/refreshes"
        while True:
            async with self._env.http.get(url, params={"offset": str(self.offset)}) as response:
                response.raise_for_status()
                page = await response.json()
            entries += page["entries"]
            if page["next"] == self.offset:
                return entries
            self.offset = page["next"]

    async def granted(self, plan: plan_.Plan) -> set[int]:
        """Indices of the sets of ``plan`` the sandbox granted a refresh since the last read."""
        indices = (
            plan.index_of_session(session_id)
            for _, session_id, status in await self.read()
            if status == 200
        )
        return {index for index in indices if index is not None}


async def fetch_journal(env: Env) -> list[list[Any]]:
    return await JournalTail(env).read()


async def check_stored(env: Env, plan: plan_.Plan) -> dict[str, int]:
    """Every stored set's refresh token, as the sandbox judges it (``current`` = alive)."""
    store = env.store()
    verdict = dict.fromkeys(("current", "stale", "dead", "unknown", "missing"), 0)
    try:
        batch: list[str] = []

        async def send() -> None:
            url = env.sandbox_url + "/_sandbox/keycloak/check"
            async with env.http.post(url, json={"refresh_tokens": batch}) as response:
                response.raise_for_status()
                for name, count in (await response.json()).items():
                    verdict[name] += count
            batch.clear()

        for start in range(0, plan.sets, 2000):
            keys = [
                TokenKey(PROVIDER, plan_.subject(i))
                for i in range(start, min(plan.sets, start + 2000))
            ]
            found = await store.get_many(keys)
            verdict["missing"] += len(keys) - len(found)
            for versioned in found.values():
                token = versioned.token_set.refresh_token
                batch.append(token.reveal() if token is not None else "")
            await send()
    finally:
        await store.aclose()
    return verdict


def cpu_of(children: Sequence[Child]) -> float:
    return sum(child.cpu() for child in children)
