"""``tokens list`` lists every readable set when one stored record does not decode (issue 22,
finding 8): it used to exit 1 on the first unreadable record."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from aiofinaccess import TokenKey
from aiofinaccess.cli.main import main
from aiofinaccess.stores.sqlite import SQLiteStore
from tests.stores.contract import sample


async def _fill(path: Path) -> None:
    async with SQLiteStore(path) as store:
        for subject in ("alice", "bob", "carol"):
            await store.put(TokenKey("everifin", subject), sample(), expected_version=None)


def test_one_unreadable_record_does_not_stop_the_listing(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens.db"
    asyncio.run(_fill(path))
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE token_sets SET data = ? WHERE key = ?", (b"\x00", "everifin:user:bob"))
    capsys.readouterr()
    assert main(["tokens", "list", "--store", str(path)]) == 0
    out, err = capsys.readouterr()
    listed = [line.split()[1] for line in out.splitlines()[1:]]
    assert listed == ["alice", "carol"]
    assert err.splitlines() == [
        "aiofinaccess tokens list: 1 stored token set could not be read and was skipped "
        "(-v names it by key hash)"
    ]
