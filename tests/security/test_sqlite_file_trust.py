"""Attack: a co-located user prepares the token store's files before the app first runs.

A database file pre-created 0666 stayed 0666 and its ``-wal``/``-shm`` became 0666 (SQLite
gives them the database's mode): every local user could read the refresh tokens. A planted
symlink was followed, so the store wrote wherever the attacker pointed. Now the store opens
without following links, checks the owner, tightens group/other bits on the file and on its
``-wal``/``-shm``/``-journal``, and refuses a directory others can write (they could swap the
files). The CLI's config file (it may hold a client secret or encryption keys) is refused
when others can write it or read its secrets, and warned about when others can read it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aiofinaccess import SQLiteStore, StoreError, TokenKey, TokenSet
from aiofinaccess.cli.config import CliError, load_config
from aiofinaccess.cli.main import main

KEY = TokenKey("everifin", "alice")
TOKENS = TokenSet(access_token="AT-alice", refresh_token="RT-alice")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir(mode=0o700)
    return directory


async def test_precreated_world_readable_file_is_tightened(home: Path) -> None:
    """A 0666 file (and the -wal/-shm SQLite derives from it) ends up 0600."""
    path = home / "tokens.db"
    path.touch()
    path.chmod(0o666)
    async with SQLiteStore(path) as store:
        await store.put(KEY, TOKENS, expected_version=None)
        for name in ("tokens.db", "tokens.db-wal", "tokens.db-shm"):
            assert mode(home / name) == 0o600, name


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
async def test_precreated_world_readable_companion_is_tightened(
    home: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A planted 0666 -wal/-shm/-journal next to a fresh store is tightened before use."""
    companion = home / f"tokens.db{suffix}"
    companion.touch()
    companion.chmod(0o666)
    async with SQLiteStore(home / "tokens.db") as store:
        await store.put(KEY, TOKENS, expected_version=None)
        if suffix != "-journal":  # SQLite discards an empty journal: only the log is left
            assert mode(companion) & 0o077 == 0
    assert f"tokens.db{suffix} was accessible to others" in caplog.text


@pytest.mark.parametrize("name", ["tokens.db", "tokens.db-wal", "tokens.db-shm"])
async def test_planted_symlink_is_refused(home: Path, tmp_path: Path, name: str) -> None:
    """A symlink in place of the file or a companion is never followed."""
    target = tmp_path / "attacker-reads-this"
    target.touch()
    (home / name).symlink_to(target)
    store = SQLiteStore(home / "tokens.db")
    with pytest.raises(StoreError, match="symbolic link"):
        await store.open()
    await store.aclose()
    assert target.stat().st_size == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
async def test_file_owned_by_another_user_is_refused(home: Path) -> None:
    """A file someone else owns (and so can read or replace) is not trusted with tokens."""
    path = home / "tokens.db"
    path.touch(mode=0o600)
    os.chown(path, 65534, 65534)
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match="owned by"):
        await store.open()
    await store.aclose()


async def test_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    """Others who can write the directory can swap the files between our checks and SQLite."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    store = SQLiteStore(shared / "tokens.db")
    with pytest.raises(StoreError, match="writable by others"):
        await store.open()
    await store.aclose()
    assert not (shared / "tokens.db").exists()


def _config(tmp_path: Path, text: str, file_mode: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(file_mode)
    return path


def test_cli_config_with_secrets_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A world-readable config holding a client secret or keys is refused, like ssh does."""
    for text in (
        '[providers.everifin]\nclient_secret = "s3cret"\n',
        'encryption_keys = ["k"]\n',
    ):
        path = _config(tmp_path, text, 0o644)
        with pytest.raises(CliError, match="readable by others"):
            load_config(str(path))


def test_cli_config_writable_by_others_is_refused(tmp_path: Path) -> None:
    """Others who can edit the config choose where the secrets go."""
    path = _config(tmp_path, 'store = "/x"\n', 0o666)
    with pytest.raises(CliError, match="writable by others"):
        load_config(str(path))


def test_cli_config_readable_by_others_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No secrets inside: it works, with a warning on stderr."""
    path = _config(tmp_path, f'store = "{tmp_path / "t.db"}"\n', 0o644)
    assert load_config(str(path)).store_path == tmp_path / "t.db"
    assert "readable by others" in capsys.readouterr().err


def test_cli_refuses_a_world_readable_config_with_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI's entry point: exit code 1 and a one-line reason."""
    path = _config(tmp_path, '[providers.everifin]\nclient_secret = "s3cret"\n', 0o644)
    assert main(["tokens", "list", "--config", str(path), "--store", str(tmp_path / "t.db")]) == 1
    err = capsys.readouterr().err
    assert "readable by others" in err
    assert "s3cret" not in err


def test_private_cli_config_is_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Control: a 0600 config with secrets loads without a word."""
    path = _config(tmp_path, '[providers.everifin]\nclient_secret = "s3cret"\n', 0o600)
    load_config(str(path))
    assert capsys.readouterr().err == ""
