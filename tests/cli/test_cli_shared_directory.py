"""A store in a sticky, world-writable directory (the system's /tmp) is refused with the right
advice: choose a private directory, never ``chmod go-w`` on a shared one; a loose directory of
our own is told to ``chmod go-w`` itself (issue 24, item 6)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from aiofinaccess.cli.main import main


def _directory(tmp_path: Path, mode: int) -> Path:
    directory = tmp_path / "dir"
    directory.mkdir()
    directory.chmod(mode)
    return directory


def _database(path: Path) -> None:
    with closing(sqlite3.connect(path)):
        pass
    path.chmod(0o600)


@pytest.mark.parametrize("what", ["store", "remembered settings"])
def test_a_sticky_shared_directory_gets_no_chmod_advice(
    what: str, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = _directory(tmp_path, 0o1777)  # as /tmp is
    store = shared / "tokens.db"
    if what == "store":
        _database(store)
        argv = ["tokens", "list", "--store", str(store)]
    else:
        settings = shared / "tokens.db.settings.json"
        settings.write_text('{"providers": {}}')
        settings.chmod(0o600)
        argv = ["config", "show", "--store", str(store)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "chmod go-w" not in err
    assert f"{shared} is shared (sticky, writable by everyone)" in err
    assert "mkdir -m 700" in err


def test_a_loose_directory_of_ours_is_told_to_chmod_itself(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loose = _directory(tmp_path, 0o777)
    _database(loose / "tokens.db")
    assert main(["tokens", "list", "--store", str(loose / "tokens.db")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert f"chmod go-w {loose}" in err
