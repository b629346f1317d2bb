"""examples/worker.py against the sandbox: every connected user found in the shared store and
synced; a user whose grant died is named to the reconnect hook and skipped; a second round
brings only what changed. Run as a script, ``--once`` leaves no store in the repository root
and Ctrl-C stops it without a traceback (issue 24, item 7)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from aiofinaccess import SQLiteStore, TokenSet
from aiofinaccess.connections import ConnectionEvent, ReconnectRequired
from aiofinaccess.sandbox import Sandbox
from tests.support.examples import load_example


async def test_the_worker_syncs_every_connected_user(sandbox: Sandbox, tmp_path: Path) -> None:
    worker = load_example("worker")
    path = tmp_path / "tokens.db"
    # The web process: two users connect; a third one's session is already dead.
    async with worker.make_manager(sandbox.base_url, SQLiteStore(path)) as web:
        await worker.connect_demo_users(web, ["alice", "bob"])
        now = time.time()
        dead = TokenSet("at-dead", issued_at=now - 600, expires_at=now - 300, refresh_token="rt-x")
        await web.store_token_set("everifin", "carol", dead)
    # The worker process, on the same store.
    told: list[str | None] = []
    async with worker.make_manager(sandbox.base_url, SQLiteStore(path)) as manager:

        def reconnect(event: ConnectionEvent) -> None:
            assert isinstance(event, ReconnectRequired)
            told.append(event.subject)

        manager.connections.subscribe(reconnect)
        cursors: dict[str, object] = {}
        first = await worker.sync_all(manager, cursors)
        await manager.wait_idle()  # the registry records the dead grant in a task of its own
        assert set(first) == {"alice", "bob"}
        expected = 3 * sandbox.config.transactions_per_account  # 3 active accounts each
        assert first == {"alice": expected, "bob": expected}
        assert told == ["carol"]
        assert len(cursors) == 6
        second = await worker.sync_all(manager, cursors)
    assert second == {"alice": 0, "bob": 0}
    assert told == ["carol"]  # told once: the dead grant is refused without a new request
    assert sandbox.stats()["token_requests"]["everifin_authorization_code"] == 2


ROOT = Path(__file__).resolve().parents[1]


def _environment() -> dict[str, str]:
    """This checkout's aiofinaccess; the example's own sandbox and default store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOFINACCESS_")}
    # PYTHONFAULTHANDLER: a SIGABRT prints every thread's stack (a worker that will not stop).
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}


def _ignore_sigint() -> None:
    """What a shell does to a job it starts in the background (``worker.py &``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def _start(*args: str, sigint_ignored: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "worker.py"),
        *args,
        cwd=ROOT,
        env=_environment(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_ignore_sigint if sigint_ignored else None,
    )


async def test_once_leaves_the_repository_root_as_it_was() -> None:
    before = sorted(os.listdir(ROOT))
    process = await _start("--once")
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert (process.returncode, err.decode()) == (0, "")
    assert out.decode().splitlines()[-1].startswith("synced 2 users: ")
    assert sorted(os.listdir(ROOT)) == before


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "background-job"])
async def test_ctrl_c_stops_the_worker_cleanly(sigint_ignored: bool) -> None:
    """SIGINT stops it, also where it was started with SIGINT ignored (CI's Python matrix
    runs the suite as a background job: the worker then never stopped)."""
    process = await _start("--interval", "60", sigint_ignored=sigint_ignored)
    assert process.stdout is not None
    try:
        async with asyncio.timeout(120):
            first = (await process.stdout.readline()).decode()
            assert first.startswith("synced 2 users: "), first
            process.send_signal(signal.SIGINT)  # waiting for its next round
            out, err = await process.communicate()
    except TimeoutError:
        process.send_signal(signal.SIGABRT)
        async with asyncio.timeout(30):
            _, stacks = await process.communicate()
        raise AssertionError(f"the worker did not stop; its threads:\n{stacks.decode()}") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (process.returncode, err.decode(), out.decode()) == (0, "", "stopped\n")
