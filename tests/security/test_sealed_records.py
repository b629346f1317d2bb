"""Attack: someone who can write the store (not read it: it is encrypted) moves rows around.

Copying alice's encrypted token set over mallory's row used to make the app serve mallory
with alice's bank; a pending authorization could be moved to another state or record kind.
Every record is now sealed to its kind and key inside the ciphertext, and a moved row is
refused with ``StoreError``. Records written before sealing migrate with
``accept_unbound=True`` and :func:`aiofinaccess.stores.migrate.reseal`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from aiofinaccess import SQLiteStore, StoreError, TokenKey, TokenSet
from aiofinaccess.cli.main import main
from aiofinaccess.core.convert import store_converter
from aiofinaccess.stores import FernetCodec, JsonCodec
from aiofinaccess.stores.migrate import reseal
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import running_redis

ALICE = TokenKey("everifin", "alice")
MALLORY = TokenKey("everifin", "mallory")
KEY = Fernet.generate_key()


def tokens(name: str) -> TokenSet:
    return TokenSet(access_token=f"AT-{name}", refresh_token=f"RT-{name}", issued_at=1.8e9)


def copy_row(path: Path, sql_from: str, sql_to: str, source: str, target: str) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        (data,) = db.execute(sql_from, (source,)).fetchone()
        assert db.execute(sql_to, (data, target)).rowcount == 1


TOKEN_ROW = "SELECT data FROM token_sets WHERE key = ?"
SET_TOKEN_ROW = "UPDATE token_sets SET data = ? WHERE key = ?"
PENDING_ROW = "SELECT data FROM pending_authorizations WHERE state = ?"
SET_PENDING_ROW = "UPDATE pending_authorizations SET data = ? WHERE state = ?"


async def two_users(store: Any) -> None:
    await store.put(ALICE, tokens("alice"), expected_version=None)
    await store.put(MALLORY, tokens("mallory"), expected_version=None)


@pytest.mark.parametrize("codec", [FernetCodec([KEY]), JsonCodec()], ids=["fernet", "json"])
async def test_sqlite_row_copied_to_another_user_is_refused(tmp_path: Path, codec: Any) -> None:
    """Alice's row copied over mallory's: mallory's read fails instead of yielding alice's bank."""
    path = tmp_path / "tokens.db"
    async with SQLiteStore(path, codec=codec) as store:
        await two_users(store)
    copy_row(path, TOKEN_ROW, SET_TOKEN_ROW, str(ALICE), str(MALLORY))
    async with SQLiteStore(path, codec=codec) as store:
        with pytest.raises(StoreError, match="another key"):
            await store.get(MALLORY)
        assert (await store.get(ALICE)) is not None  # the original is untouched


async def test_sqlite_token_set_moved_into_a_pending_record_is_refused(tmp_path: Path) -> None:
    """A token-set row moved into the pending table (or back) is refused: kinds are sealed."""
    path = tmp_path / "tokens.db"
    codec = FernetCodec([KEY])
    async with SQLiteStore(path, codec=codec) as store:
        await two_users(store)
        await store.put_pending("web:everifin:req:x", b'{"subject": "mallory"}', ttl=600)
    copy_row(path, TOKEN_ROW, SET_PENDING_ROW, str(ALICE), "web:everifin:req:x")
    async with SQLiteStore(path, codec=codec) as store:
        with pytest.raises(StoreError, match="not a 'pending' one"):
            await store.get_pending("web:everifin:req:x")
        await store.put_pending("web:everifin:req:x", b'{"subject": "mallory"}', ttl=600)
    copy_row(path, PENDING_ROW, SET_TOKEN_ROW, "web:everifin:req:x", str(MALLORY))
    async with SQLiteStore(path, codec=codec) as store:
        with pytest.raises(StoreError, match="not a 'token_set' one"):
            await store.get(MALLORY)


async def test_sqlite_pending_record_moved_to_another_state_is_refused(tmp_path: Path) -> None:
    """A pending outcome moved under another state's name cannot be taken there."""
    path = tmp_path / "tokens.db"
    codec = FernetCodec([KEY])
    async with SQLiteStore(path, codec=codec) as store:
        await store.put_pending("web:everifin:out:a", b"alice's outcome", ttl=600)
        await store.put_pending("web:everifin:out:b", b"bob's outcome", ttl=600)
    copy_row(path, PENDING_ROW, SET_PENDING_ROW, "web:everifin:out:a", "web:everifin:out:b")
    async with SQLiteStore(path, codec=codec) as store:
        with pytest.raises(StoreError, match="another key"):
            await store.take_pending("web:everifin:out:b")
        assert await store.get_pending("web:everifin:out:a") == b"alice's outcome"


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    async with running_redis() as url:
        yield url


async def test_redis_row_copied_to_another_user_is_refused(redis_url: str) -> None:
    """The same copy in Redis (``HSET ts:mallory data <alice's data>``) is refused."""
    store = RedisStore(redis_url, prefix="t:", codec=FernetCodec([KEY]))
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await two_users(store)
        await raw.hset(f"t:ts:{MALLORY}", "data", await raw.hget(f"t:ts:{ALICE}", "data"))
        with pytest.raises(StoreError, match="another key"):
            await store.get(MALLORY)
    finally:
        await store.aclose()
        await raw.aclose()


async def test_redis_records_moved_between_kinds_are_refused(redis_url: str) -> None:
    """A token set copied into a pending record, and a pending record into a token set."""
    store = RedisStore(redis_url, prefix="t:", codec=FernetCodec([KEY]))
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await two_users(store)
        await store.put_pending("web:everifin:req:x", b"{}", ttl=600)
        pending = await raw.get("t:pending:web:everifin:req:x")
        await raw.set("t:pending:web:everifin:req:x", await raw.hget(f"t:ts:{ALICE}", "data"))
        with pytest.raises(StoreError, match="not a 'pending' one"):
            await store.take_pending("web:everifin:req:x")
        await raw.hset(f"t:ts:{MALLORY}", "data", pending)
        with pytest.raises(StoreError, match="not a 'token_set' one"):
            await store.get(MALLORY)
    finally:
        await store.aclose()
        await raw.aclose()


class TodaysFernetCodec:
    """Writes exactly what FernetCodec wrote before sealing: Fernet over bare token-set JSON."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encode(self, token_set: TokenSet, **_: object) -> bytes:
        document = store_converter.unstructure(token_set)
        return self._fernet.encrypt(json.dumps(document, separators=(",", ":")).encode())

    def decode(self, data: bytes, **_: object) -> TokenSet:  # pragma: no cover  (write-only)
        raise NotImplementedError


async def test_store_written_before_sealing_migrates(tmp_path: Path) -> None:
    """Old rows: refused by default, read with accept_unbound, resealed, then bound."""
    path = tmp_path / "tokens.db"
    async with SQLiteStore(path, codec=TodaysFernetCodec(KEY)) as store:  # type: ignore[arg-type]
        await two_users(store)
    async with SQLiteStore(path, codec=FernetCodec([KEY])) as store:
        with pytest.raises(StoreError, match="not sealed"):
            await store.get(ALICE)
    async with SQLiteStore(path, codec=FernetCodec([KEY], accept_unbound=True)) as store:
        assert (await store.get(ALICE)).token_set == tokens("alice")  # type: ignore[union-attr]
        assert await reseal(store) == 2
    async with SQLiteStore(path, codec=FernetCodec([KEY])) as store:
        assert (await store.get(ALICE)).token_set == tokens("alice")  # type: ignore[union-attr]
        got = await store.get(MALLORY)
        assert got is not None
        assert got.token_set == tokens("mallory")
    copy_row(path, TOKEN_ROW, SET_TOKEN_ROW, str(ALICE), str(MALLORY))
    async with SQLiteStore(path, codec=FernetCodec([KEY], accept_unbound=True)) as store:
        with pytest.raises(StoreError, match="another key"):
            await store.get(MALLORY)


async def test_unsealed_plain_json_is_still_read(tmp_path: Path) -> None:
    """Plain-JSON stores written before sealing keep working (refusing protects nothing)."""
    path = tmp_path / "tokens.db"
    async with SQLiteStore(path) as store:
        await store.put(ALICE, tokens("alice"), expected_version=None)
    legacy = json.dumps(store_converter.unstructure(tokens("old"))).encode()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(SET_TOKEN_ROW, (legacy, str(ALICE)))
    async with SQLiteStore(path) as store:
        got = await store.get(ALICE)
        assert got is not None
        assert got.token_set == tokens("old")
    async with SQLiteStore(path, codec=JsonCodec(accept_unbound=False)) as store:
        with pytest.raises(StoreError, match="not sealed"):
            await store.get(ALICE)


async def test_cli_store_written_before_sealing_migrates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's encrypted store: ``tokens reseal`` with AIOFINACCESS_ACCEPT_UNBOUND_RECORDS=1."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    path = data / "tokens.db"
    async with SQLiteStore(path, codec=TodaysFernetCodec(KEY)) as store:  # type: ignore[arg-type]
        await two_users(store)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("AIOFINACCESS_ENCRYPTION_KEYS", KEY.decode())
    monkeypatch.delenv("AIOFINACCESS_ACCEPT_UNBOUND_RECORDS", raising=False)
    listing = ["tokens", "list", "--store", str(path)]
    assert await asyncio.to_thread(main, listing) == 0  # unreadable sets are skipped, and said
    assert "2 stored token sets could not be read" in (err := capsys.readouterr().err)
    assert "not sealed" in err
    monkeypatch.setenv("AIOFINACCESS_ACCEPT_UNBOUND_RECORDS", "1")
    assert await asyncio.to_thread(main, ["tokens", "reseal", "--store", str(path)]) == 0
    assert "resealed 2 token set(s)" in capsys.readouterr().out
    monkeypatch.delenv("AIOFINACCESS_ACCEPT_UNBOUND_RECORDS")
    assert await asyncio.to_thread(main, listing) == 0
    assert "mallory" in capsys.readouterr().out
