"""Crash test: SIGKILL a renewing worker at random moments and count the sessions lost.

    .venv/bin/python -m tests.reliability.crash --kills 200 --store sqlite [--json PATH]
    .venv/bin/python -m tests.reliability.crash --kills 200 --store redis

A worker process (manager, scheduler, request load) runs against the sandbox (Keycloak
rotation with reuse detection, 1-second access tokens, 50 ms of latency at the token endpoint
so that kills can land while a refresh is in flight) and is killed with SIGKILL after a random
time. Before the kill the worker is stopped (SIGSTOP) and its event log read, which tells
whether the kill falls between sending a refresh and persisting its answer: the one window no
client can close. A new worker then opens the same store. Sessions the next worker finds dead
(a replayed refresh token killed them at the sandbox) are charged to the kill before it.
Goal: zero sessions lost from kills outside that window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs

from aiofinaccess import (
    ClientCredentials,
    Everifin,
    ReauthorizationRequired,
    Schedule,
    SessionManager,
    TokenKey,
)
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.sandbox import Faults, Sandbox, SandboxConfig, run_sandbox
from tests.support.multiprocess_worker import open_store
from tests.support.redis_server import running_redis

ROOT = Path(__file__).resolve().parents[2]


@attrs.define
class CrashReport:
    store: str
    users: int
    kills: int
    kills_inside_window: int
    kills_outside_window: int
    lost_inside_window: int
    lost_outside_window: int
    lost_total: int
    sessions_alive_at_end: int
    reuse_violations: int
    token_requests: int


def _window_open(events: bytes) -> bool:
    started = events.count(b"S")
    closed = events.count(b"X") + events.count(b"P") + events.count(b"F")
    return started > closed


@contextlib.asynccontextmanager
async def _store_spec(kind: str, directory: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:{directory / 'crash.db'}"
        return
    async with running_redis() as url:
        yield f"redis:{url}|crash:"


async def _seed(sandbox: Sandbox, spec: str, users: int) -> None:
    keycloak = sandbox.service("keycloak")
    store = open_store(spec)
    anchor = Anchor(time.time(), time.monotonic())
    for n in range(users):
        token_set = parse_token_response(keycloak.seed_session(f"user-{n}"), sent=anchor)
        await store.put(TokenKey("everifin", f"user-{n}"), token_set, expected_version=None)
    await store.aclose()


def _worker_log(events: Path) -> Any:
    """Where a worker's stderr goes: a file beside its events with CRASH_DEBUG, else nowhere."""
    if os.environ.get("CRASH_DEBUG"):
        return Path(str(events) + ".log").open("wb")  # the child process owns it
    return asyncio.subprocess.DEVNULL


async def _start_worker(
    spec: str, sandbox: Sandbox, events: Path, users: int
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "CRASH_CLIENT_ID": sandbox.config.everifin_client_id,
        "CRASH_CLIENT_SECRET": sandbox.config.everifin_client_secret,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reliability.crash_worker",
        spec,
        sandbox.base_url,
        str(events),
        str(users),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=_worker_log(events),
    )


def _read(path: Path) -> bytes:
    """The worker's event log so far (small: a byte per event)."""
    return path.read_bytes() if path.exists() else b""


async def _wait_ready(events: Path, process: asyncio.subprocess.Process) -> None:
    for _ in range(600):
        if b"R" in _read(events):
            return
        if process.returncode is not None:
            raise RuntimeError("worker exited before it was ready")
        await asyncio.sleep(0.02)
    raise RuntimeError("worker never became ready")


async def run_crash_test(*, kills: int, store: str, users: int = 20, seed: int = 1) -> CrashReport:
    rng = random.Random(seed)
    config = SandboxConfig(keycloak_access_ttl=1.0, sso_idle=3600.0)
    config.faults = Faults(latency=0.05, scope="token")
    inside = outside = lost_inside = lost_outside = 0
    with tempfile.TemporaryDirectory(prefix="aiofinaccess-crash-") as tmp:
        directory = Path(tmp)
        async with run_sandbox(config) as sandbox, _store_spec(store, directory) as spec:
            await _seed(sandbox, spec, users)
            lost: set[str] = set()
            for kill in range(kills):
                events = directory / f"events-{kill}"
                process = await _start_worker(spec, sandbox, events, users)
                await _wait_ready(events, process)
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                process.send_signal(signal.SIGSTOP)
                window = _window_open(_read(events))
                process.send_signal(signal.SIGKILL)
                await process.wait()
                await _settle(sandbox)  # let the sandbox finish what the worker had sent
                newly = await _lost_sessions(sandbox, spec, users) - lost
                lost |= newly
                if window:
                    inside += 1
                    lost_inside += len(newly)
                else:
                    outside += 1
                    lost_outside += len(newly)
                if os.environ.get("CRASH_DEBUG"):
                    tail = _read(events)[-30:]
                    sys.stderr.write(
                        f"kill {kill}: window={window} lost={len(newly)} events={tail!r}\n"
                    )
            alive = await _count_alive(sandbox, spec, users)
            stats = sandbox.stats()
    return CrashReport(
        store=store,
        users=users,
        kills=kills,
        kills_inside_window=inside,
        kills_outside_window=outside,
        lost_inside_window=lost_inside,
        lost_outside_window=lost_outside,
        lost_total=users - alive,
        sessions_alive_at_end=alive,
        reuse_violations=stats["reuse_violations"],
        token_requests=stats["token_requests"].get("everifin_refresh_token", 0),
    )


async def _settle(sandbox: Sandbox) -> None:
    """Wait until the sandbox has answered (or dropped) every request a dead worker sent."""
    await asyncio.sleep(0.1)
    for _ in range(500):
        # A dead worker's requests may still sit unread in a socket: they count until the
        # sandbox has read them and seen the connection close.
        if sandbox.state.in_flight == 0 and sandbox.open_connections == 0:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError("the sandbox kept handling requests of a killed worker")


async def _lost_sessions(sandbox: Sandbox, spec: str, users: int) -> set[str]:
    """Users whose stored refresh token is no longer the one the sandbox would accept.

    This is the ground truth of a loss: the server rotated the token (or killed the session)
    and the store never got the successor. It does not wait for a replay to reveal it.
    """
    keycloak = sandbox.service("keycloak")
    current = {
        session.user: session.current_refresh
        for session in keycloak.sessions.values()
        if session.active and session.client_attached
    }
    store = open_store(spec)
    lost = set()
    try:
        for n in range(users):
            user = f"user-{n}"
            stored = await store.get(TokenKey("everifin", user))
            token = None if stored is None else stored.token_set.refresh_token
            if token is None or current.get(user) != token.reveal():
                lost.add(user)
    finally:
        await store.aclose()
    return lost


async def _count_alive(sandbox: Sandbox, spec: str, users: int) -> int:
    alive = 0
    async with SessionManager(store=open_store(spec), schedule=Schedule(enabled=False)) as manager:
        config = sandbox.config
        manager.register(
            Everifin.at(sandbox.idp_url, sandbox.api_url),
            ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
        )
        for n in range(users):
            try:
                await manager.refresh("everifin", f"user-{n}")
            except ReauthorizationRequired:
                continue
            alive += 1
    return alive


def main() -> None:
    parser = argparse.ArgumentParser(description="SIGKILL crash test of the token layer.")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = asyncio.run(run_crash_test(kills=args.kills, store=args.store, users=args.users))
    figures: dict[str, Any] = attrs.asdict(report)
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
