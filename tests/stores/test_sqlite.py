"""SQLiteStore: the store contract, durability, encryption at rest, processes sharing a file."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import aiosqlite
import attrs
import pytest
from cryptography.fernet import Fernet

from aiofinaccess import StoreError, TokenKey
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.stores import TokenStore
from aiofinaccess.stores.codec import FernetCodec, JsonCodec
from aiofinaccess.stores.sqlite import SQLiteStore
from tests.stores.contract import (
    ALICE,
    ConnectionsContract,
    DutyContract,
    StoreContract,
    claim,
    sample,
)
from tests.stores.unreadable import UnreadableContract

ACCESS = "access-token-7f3a9c51e0"
REFRESH = "refresh-token-2b8e4d96aa"

# Each worker takes the lease ROUNDS times; inside it, it reads the counter kept in the token
# set's extra and writes counter + 1 at the version it read. Without exclusion, increments
# would be lost (or show up as CAS conflicts) and the holders' time spans would overlap.
WORKER = """
import asyncio, json, sys, time
import attrs
from aiofinaccess import TokenKey
from aiofinaccess.errors import StoreConflictError
from aiofinaccess import TokenKey
from aiofinaccess.stores.sqlite import SQLiteStore

async def main(path, rounds):
    key = TokenKey("everifin", "alice")
    conflicts, spans = 0, []
    async with SQLiteStore(path, lease_poll=0.005) as store:
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        for _ in range(rounds):
            async with store.lease(key, ttl=10):
                entered = time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes
                current = await store.get(key)
                token_set = current.token_set
                await asyncio.sleep(0.001)
                extra = {"count": token_set.extra["count"] + 1}
                try:
                    await store.put(
                        key, attrs.evolve(token_set, extra=extra), expected_version=current.version
                    )
                except StoreConflictError:
                    conflicts += 1
                spans.append((entered, time.monotonic()))
    print(json.dumps({"conflicts": conflicts, "spans": spans}), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

HOLDER = """
import asyncio, sys
from aiofinaccess import TokenKey
from aiofinaccess.stores.sqlite import SQLiteStore

async def main(path):
    async with SQLiteStore(path) as store, store.lease(TokenKey("everifin", "alice"), ttl=1):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


def raw_bytes(directory: Path) -> bytes:
    """Everything SQLite wrote: the database, its WAL and shared-memory files."""
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file())


def modes(directory: Path) -> dict[str, int]:
    """File name -> permission bits, for every file in ``directory``."""
    return {path.name: path.stat().st_mode & 0o777 for path in directory.iterdir()}


async def spawn(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def reap(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.kill()
        await process.wait()


class TestSQLiteStore(StoreContract, ConnectionsContract, DutyContract, UnreadableContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteStore]:
        store = await SQLiteStore(tmp_path / "tokens.db").open()
        yield store
        await store.aclose()

    async def corrupt(self, store: TokenStore, key: TokenKey) -> None:
        assert isinstance(store, SQLiteStore)
        with closing(sqlite3.connect(store._path)) as db, db:
            db.execute("UPDATE token_sets SET data = ? WHERE key = ?", (b"\x00garbage", str(key)))


async def test_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    """The database and its -wal/-shm files are 0600, whatever the umask; WAL is on."""
    path = tmp_path / "tokens.db"
    old_umask = os.umask(0o022)
    try:
        async with SQLiteStore(path) as store:
            await store.put(ALICE, sample(), expected_version=None)
            assert modes(tmp_path) == {
                "tokens.db": 0o600,
                "tokens.db-shm": 0o600,
                "tokens.db-wal": 0o600,
            }
            with closing(sqlite3.connect(path)) as raw:
                assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        os.umask(old_umask)


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    """A new store object on the same file sees the set and its version."""
    async with SQLiteStore(tmp_path / "tokens.db") as store:
        version = await store.put(ALICE, sample(), expected_version=None)
    async with SQLiteStore(tmp_path / "tokens.db") as reopened:
        stored = await reopened.get(ALICE)
    assert stored is not None
    assert (stored.token_set, stored.version) == (sample(), version)


async def test_opens_lazily_and_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent first calls share one connection; the repr shows the path only."""
    connects = 0
    real_connect = aiosqlite.connect

    def counting_connect(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        nonlocal connects
        connects += 1
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(aiosqlite, "connect", counting_connect)
    store = SQLiteStore(tmp_path / "tokens.db")
    assert repr(store) == f"SQLiteStore(path={str(tmp_path / 'tokens.db')!r})"
    try:
        assert await asyncio.gather(*(store.get(ALICE) for _ in range(10))) == [None] * 10
    finally:
        await store.aclose()
    assert connects == 1


async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    """After aclose every call raises StoreError; closing again is fine."""
    store = await SQLiteStore(tmp_path / "tokens.db").open()
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreError, match="store is closed"):
        await store.get(ALICE)
    with pytest.raises(StoreError, match="store is closed"):
        async with store.lease(ALICE, ttl=1):
            pass


def test_bad_path_is_a_configuration_error(tmp_path: Path) -> None:
    """A missing directory, a directory as the file, or ':memory:' fail at construction."""
    with pytest.raises(ConfigurationError, match=r"store path .* directory does not exist"):
        SQLiteStore(tmp_path / "missing" / "tokens.db")
    with pytest.raises(ConfigurationError, match=r"store path .* is a directory"):
        SQLiteStore(tmp_path)


def test_a_file_where_the_directory_belongs_is_named(tmp_path: Path) -> None:
    """``SQLiteStore("/etc/hostname/tokens.db")`` said "directory does not exist"."""
    hostname = tmp_path / "hostname"
    hostname.write_text("box\n")
    for path in (hostname / "tokens.db", hostname / "deeper" / "tokens.db"):
        with pytest.raises(ConfigurationError) as info:
            SQLiteStore(path)
        assert str(info.value) == f"store path {path}: {hostname} is a file, not a directory"
    with pytest.raises(ConfigurationError, match="store path"):
        SQLiteStore(":memory:")
    with pytest.raises(ConfigurationError, match="lease_poll"):
        SQLiteStore(tmp_path / "tokens.db", lease_poll=0)


async def test_sqlite_errors_become_store_errors(tmp_path: Path) -> None:
    """A broken database raises StoreError, chained to SQLite's error."""
    async with SQLiteStore(tmp_path / "tokens.db") as store:
        with closing(sqlite3.connect(tmp_path / "tokens.db")) as raw:
            raw.execute("DROP TABLE token_sets")
        with pytest.raises(StoreError, match="OperationalError") as caught:
            await store.put(ALICE, sample(), expected_version=None)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


async def test_lease_wait_times_out_after_ttl(tmp_path: Path) -> None:
    """A waiter gives up after ttl seconds; the message names the key's hash, not the user."""
    async with SQLiteStore(tmp_path / "tokens.db") as store, store.lease(ALICE, ttl=5):
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"lease on token set {ALICE.hashed}") as caught:
            async with store.lease(ALICE, ttl=0.2):
                pass
        assert 0.2 <= time.monotonic() - started < 1
        assert "alice" not in str(caught.value)


async def test_lease_is_released_when_the_holder_is_cancelled(tmp_path: Path) -> None:
    """Cancelling a holder (or a waiter) frees the lease at once, not after its ttl."""
    async with SQLiteStore(tmp_path / "tokens.db") as store:
        entered = asyncio.Event()

        async def hold() -> None:
            async with store.lease(ALICE, ttl=60):
                entered.set()
                await asyncio.sleep(3600)

        holder = asyncio.create_task(hold())
        await entered.wait()
        waiter = asyncio.create_task(hold())
        await asyncio.sleep(0.05)
        for task in (waiter, holder):
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        async with asyncio.timeout(1), store.lease(ALICE, ttl=0.5):
            pass


async def test_json_codec_stores_tokens_in_the_clear(tmp_path: Path) -> None:
    """The control for the encryption test: without it the tokens are in the file."""
    async with SQLiteStore(tmp_path / "tokens.db") as store:
        await store.put(ALICE, sample(ACCESS, REFRESH), expected_version=None)
    data = raw_bytes(tmp_path)
    assert ACCESS.encode() in data
    assert REFRESH.encode() in data


async def test_fernet_codec_keeps_tokens_out_of_the_file(tmp_path: Path) -> None:
    """No file SQLite writes holds a token, while open or after close."""
    codec = FernetCodec([Fernet.generate_key()])
    async with SQLiteStore(tmp_path / "tokens.db", codec=codec) as store:
        await store.put(ALICE, sample(ACCESS, REFRESH), expected_version=None)
        data = raw_bytes(tmp_path)
        assert ACCESS.encode() not in data
        assert REFRESH.encode() not in data
        stored = await store.get(ALICE)
    assert stored is not None
    assert stored.token_set == sample(ACCESS, REFRESH)
    data = raw_bytes(tmp_path)
    assert ACCESS.encode() not in data
    assert REFRESH.encode() not in data


async def test_fernet_key_rotation(tmp_path: Path) -> None:
    """Another key cannot read the data; [new, old] reads it and writes under the new key."""
    old, new = Fernet.generate_key(), Fernet.generate_key()
    path = tmp_path / "tokens.db"
    async with SQLiteStore(path, codec=FernetCodec([old])) as store:
        version = await store.put(ALICE, sample(ACCESS, REFRESH), expected_version=None)
    async with SQLiteStore(path, codec=FernetCodec([new])) as store:
        with pytest.raises(StoreError, match="cannot be decrypted"):
            await store.get(ALICE)
    async with SQLiteStore(path, codec=FernetCodec([new, old])) as store:
        stored = await store.get(ALICE)
        assert stored is not None
        assert stored.token_set == sample(ACCESS, REFRESH)
        await store.put(ALICE, stored.token_set, expected_version=version)
    async with SQLiteStore(path, codec=FernetCodec([new])) as store:
        stored = await store.get(ALICE)
    assert stored is not None
    assert stored.token_set == sample(ACCESS, REFRESH)


async def test_lease_excludes_other_processes(tmp_path: Path) -> None:
    """4 processes x 25 read-increment-CAS rounds under the lease: no overlap, no conflict."""
    path = tmp_path / "tokens.db"
    processes_n, rounds = 4, 25
    async with SQLiteStore(path) as store:
        await store.put(ALICE, attrs.evolve(sample(), extra={"count": 0}), expected_version=None)
        processes = [await spawn(WORKER, str(path), str(rounds)) for _ in range(processes_n)]
        try:
            for process in processes:
                assert process.stdout is not None
                assert await asyncio.wait_for(process.stdout.readline(), 20) == b"ready\n"
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
                process.stdin.close()
            outputs = await asyncio.wait_for(
                asyncio.gather(*(process.communicate() for process in processes)), 30
            )
        finally:
            await reap(processes)
        assert [process.returncode for process in processes] == [0] * processes_n
        reports = [json.loads(stdout) for stdout, _ in outputs]
        final = await store.get(ALICE)
    assert sum(report["conflicts"] for report in reports) == 0
    spans = sorted(span for report in reports for span in report["spans"])
    assert len(spans) == processes_n * rounds
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlaps == []
    assert final is not None
    assert final.token_set.extra == {"count": processes_n * rounds}


async def test_lease_of_a_killed_process_is_taken_over_after_its_ttl(tmp_path: Path) -> None:
    """SIGKILL skips every finally: the lease row stays until its ttl (1 s) runs out."""
    path = tmp_path / "tokens.db"
    async with SQLiteStore(path) as store:
        holder = await spawn(HOLDER, str(path))
        try:
            assert holder.stdout is not None
            assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"held\n"
            held = time.monotonic()
            holder.kill()
            assert await holder.wait() == -9
        finally:
            await reap([holder])
        with pytest.raises(StoreError, match="timed out"):
            async with store.lease(ALICE, ttl=0.1):
                pass
        async with store.lease(ALICE, ttl=5):
            taken_over = time.monotonic() - held
    assert 0.5 < taken_over < 2


# -- refresh duty (issue 16) ----------------------------------------------------------------------

CLAIMER = """
import asyncio, json, sys
from aiofinaccess import TokenKey
from aiofinaccess.stores.sqlite import SQLiteStore

async def main(path):
    claimed = []
    async with SQLiteStore(path) as store:
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        scope = [TokenKey("everifin", client="app#1")]
        while batch := await store.claim_due(
            limit=10, claim_for=600, owner="p", clients=scope
        ):
            claimed += [str(key) for key in batch]
            await asyncio.sleep(0.002)  # let the other process interleave
    print(json.dumps(claimed), flush=True)

asyncio.run(main(sys.argv[1]))
"""

# The schema before the refresh duty (aiofinaccess <= the commit before issue 16).
OLD_SCHEMA = """
CREATE TABLE token_sets (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, version INTEGER NOT NULL,
    data BLOB NOT NULL, updated_at REAL
);
CREATE INDEX token_sets_provider ON token_sets (provider);
"""


async def test_two_processes_never_claim_the_same_set(tmp_path: Path) -> None:
    """Two processes claim 1,000 due sets in batches of 10: every set goes to exactly one."""
    path = tmp_path / "tokens.db"
    keys = [TokenKey("everifin", f"user-{n}") for n in range(1000)]
    async with SQLiteStore(path) as store:
        for n, key in enumerate(keys):
            await store.put(key, sample(), expected_version=None, due_at=float(n))
    processes = [await spawn(CLAIMER, str(path)) for _ in range(2)]
    try:
        for process in processes:
            assert process.stdout is not None
            async with asyncio.timeout(30):
                assert await process.stdout.readline() == b"ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        async with asyncio.timeout(60):
            outputs = [json.loads((await process.communicate())[0]) for process in processes]
    finally:
        await reap(processes)
    assert all(outputs), "both processes claimed some sets"
    everything = outputs[0] + outputs[1]
    assert len(everything) == len(set(everything)) == 1000
    assert set(everything) == {str(key) for key in keys}


async def test_a_database_of_the_old_schema_gains_due_times(tmp_path: Path) -> None:
    """A file written before the duty opens, reads, and has every set due at once."""
    path = tmp_path / "tokens.db"
    codec = JsonCodec()
    with closing(sqlite3.connect(path)) as raw:
        raw.executescript(OLD_SCHEMA)
        for n in range(3):
            key = TokenKey("everifin", f"old-{n}")
            data = codec.encode(sample(f"AT-{n}"), kind="token_set", key=str(key))
            raw.execute(
                "INSERT INTO token_sets VALUES (?, ?, ?, ?, ?)",
                (str(key), "everifin", 7 + n, data, 1.0),
            )
        raw.commit()
    os.chmod(path, 0o600)
    async with SQLiteStore(path) as store:
        stored = await store.get(TokenKey("everifin", "old-1"))
        assert stored is not None
        assert (stored.version, stored.token_set.access_token.reveal()) == (8, "AT-1")
        assert await store.due_count(now=time.time()) == 3
        claimed = await claim(store)
        old = [str(TokenKey("everifin", f"old-{n}")) for n in range(3)]
        assert sorted(str(key) for key in claimed) == old
        await store.put(ALICE, sample(), expected_version=None, due_at=5.0)
        assert await store.next_due() == 5.0
    with closing(sqlite3.connect(path)) as raw:
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(token_sets)")}
    assert "token_sets_due" in indexes
    async with SQLiteStore(path) as reopened:  # a second open migrates nothing again
        assert await reopened.next_due() == 5.0


async def test_keys_stream_while_writers_write(tmp_path: Path) -> None:
    """Listing 1,500 keys in batches does not hold up (or get refused by) writes meanwhile."""
    async with SQLiteStore(tmp_path / "tokens.db") as store:
        keys = [TokenKey("everifin", f"user-{n}") for n in range(1500)]
        for key in keys:
            await store.put(key, sample(), expected_version=None)
        listed = []
        async for key in store.keys("everifin"):
            listed.append(key)
            if len(listed) % 400 == 0:  # a write between two batches of the open SELECT
                async with asyncio.timeout(2):
                    await store.put(
                        TokenKey("finapi", f"new-{len(listed)}"), sample(), expected_version=None
                    )
        assert sorted(listed) == sorted(keys)
        assert len([key async for key in store.keys(None)]) == 1503


async def test_claim_throughput_in_batches_of_100(tmp_path: Path) -> None:
    """Measured for docs/guides/refresh-duty.md: claims per second in batches of 100."""
    async with SQLiteStore(tmp_path / "tokens.db") as store:
        for n in range(5000):
            key = TokenKey("everifin", f"user-{n}")
            await store.put(key, sample(), expected_version=None, due_at=float(n % 97))
        started = time.perf_counter()
        claimed = 0
        while batch := await claim(store, limit=100):
            assert len(batch) == 100
            claimed += len(batch)
        elapsed = time.perf_counter() - started
    assert claimed == 5000
    print(  # noqa: T201  (the figure the issue asks for, shown with -s)
        f"\nSQLite claim throughput: {claimed / elapsed:,.0f} claims/s (batches of 100)"
    )
