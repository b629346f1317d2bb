"""Review of the store setting (cli/store.py): an operator's typo or a config others can read
must never print the Redis password, make directories named after it, or end in a traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiofinaccess import TokenKey, TokenSet
from aiofinaccess.cli.main import main
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import running_redis

PASSWORD = "s3cret-pw"
KEY = TokenKey("everifin", "alice")


@pytest.fixture
def workdir(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cwd"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


@pytest.mark.parametrize(
    "store",
    [
        f" redis://:{PASSWORD}@127.0.0.1:1/0",  # a blank pasted before the URL
        f"\tredis://:{PASSWORD}@127.0.0.1:1/0",
        f"redis:/:{PASSWORD}@127.0.0.1:1/0",  # one slash short
        f"redis://:ab/{PASSWORD}@127.0.0.1:1/0",  # a base64 password with a '/', unquoted
        f"postgresql:/app:{PASSWORD}@127.0.0.1:1/tokens",  # one slash short
        f"postgres:app:{PASSWORD}@127.0.0.1:1/tokens",  # none
    ],
)
def test_a_mistyped_store_url_never_shows_its_password(
    store: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``config show`` and ``tokens list`` on a store URL with a typo: the password is not
    printed (as a path, or as the db of ``describe``) and nothing is created in the cwd."""
    for argv in (["config", "show"], ["tokens", "list"]):
        code = main([*argv, "--store", store])
        captured = capsys.readouterr()
        assert PASSWORD not in captured.out + captured.err, (argv, code, captured.out)
    assert not any(workdir.rglob("*")), sorted(str(p) for p in workdir.rglob("*"))


@pytest.mark.parametrize(
    "store",
    [
        "redis://127.0.0.1:99999/0",  # port out of range
        f"redis://:{PASSWORD}@127.0.0.1:abc/0",  # port not a number
        f"redis://:{PASSWORD}@[::1/0",  # an IPv6 bracket left open
        f"postgresql://app:{PASSWORD}@127.0.0.1:abc/tokens",
        f"postgresql://app:{PASSWORD}@[::1/tokens",
        f"postgresql://app:{PASSWORD}@127.0.0.1:1/tokens?sslmode=require",  # checks off
    ],
)
def test_a_malformed_store_url_is_a_typed_error(
    store: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command answers a malformed URL with its error line and exit code 1, not a
    traceback (ValueError out of urllib)."""
    for argv in (["config", "show"], ["tokens", "list"]):
        code = main([*argv, "--store", store])
        captured = capsys.readouterr()
        assert code == 1, (argv, code)
        assert PASSWORD not in captured.out + captured.err


async def test_a_password_in_the_url_query_is_a_secret_too(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """redis-py takes ``?password=`` as the password: a config file others can read with
    one must be refused like one with ``:password@`` (it is only warned about)."""
    async with running_redis(password=PASSWORD) as url:
        store = RedisStore(url.replace("redis://", f"redis://:{PASSWORD}@"))
        await store.put(KEY, TokenSet(access_token="AT"), expected_version=None)
        await store.aclose()
        config = tmp_path / "config.toml"
        config.write_text(f'store = "{url}?password={PASSWORD}"\n')
        config.chmod(0o644)
        code = await asyncio.to_thread(main, ["tokens", "list", "--config", str(config)])
        captured = capsys.readouterr()
    assert "alice" not in captured.out, "the password in the query opened the store"
    assert code == 1
    assert "holds secrets and is readable by others" in captured.err


def test_a_password_file_others_can_read_is_refused_or_warned(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config file holding the store password must be private (refused otherwise); the
    password file, the recommended place, is read whatever its mode."""
    secret = tmp_path / "redis.pw"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o644)
    code = main(
        ["config", "show", "--store", "redis://127.0.0.1:1/0", "--redis-password-file", str(secret)]
    )
    err = capsys.readouterr().err
    assert code == 1 or "readable by others" in err, (code, err)
    assert PASSWORD not in err


def test_a_fifo_as_the_password_file_does_not_hang(env: dict[str, str], tmp_path: Path) -> None:
    """A FIFO (or /dev/zero, a device) named as the password file: the command should refuse
    it (not a regular file); it blocks in read_text() forever. 30 s is far more than the
    command needs (it answers in about a second with a regular file)."""
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo)
    argv = [sys.executable, "-m", "aiofinaccess.cli.main", "config", "show"]
    argv += ["--store", "redis://127.0.0.1:1/0", "--redis-password-file", str(fifo)]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)  # noqa: S603  (our own CLI)
    except subprocess.TimeoutExpired:
        pytest.fail("the command still waits on the FIFO after 30 s")
    assert done.returncode == 1


@pytest.mark.parametrize(
    "toml",
    [
        f'store = ["redis://:{PASSWORD}@127.0.0.1:1/0"]',  # an array where a string belongs
        f'store = {{ url = "redis://:{PASSWORD}@127.0.0.1:1/0" }}',  # an inline table
    ],
    ids=["array", "table"],
)
def test_a_store_setting_of_the_wrong_type_is_refused(
    toml: str, workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The config file's ``store`` is str()-ed: a list or table becomes a SQLite path with the
    password in it, printed by ``config show`` (and its directory made by a login)."""
    config = tmp_path / "config.toml"
    config.write_text(toml + "\n")
    config.chmod(0o600)
    code = main(["config", "show", "--config", str(config)])
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err, captured.out
    assert code == 1


def test_a_password_file_others_can_write_is_refused(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Remembered settings and the config file are refused when others can write them; the
    Redis password file is read through a link, writable by all (0666), in a 1777 directory:
    whoever can replace it chooses what this process sends in AUTH."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    planted = tmp_path / "elsewhere.txt"  # what the link points at: any file we can read
    planted.write_text(PASSWORD + "\n")
    planted.chmod(0o666)
    (shared / "redis.pw").symlink_to(planted)
    argv = ["config", "show", "--store", "redis://127.0.0.1:1/0"]
    code = main([*argv, "--redis-password-file", str(shared / "redis.pw")])
    err = capsys.readouterr().err
    assert code == 1, "a symlinked, world-writable password file in a 1777 directory was used"
    assert PASSWORD not in err


@pytest.mark.parametrize("providers", ['["everifin"]', '"everifin"', "7"])
def test_remembered_settings_of_another_shape_are_a_typed_error(
    providers: str, workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A remembered-settings file of ours whose ``providers`` is not a table (another
    version's, a hand edit): every command on that store ends in an AttributeError traceback
    (``.items()`` on a list or string) instead of its error line."""
    store = tmp_path / "data" / "tokens.db"
    store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings = store.with_name("tokens.db.settings.json")
    settings.write_text(f'{{"providers": {providers}}}\n')
    settings.chmod(0o600)
    code = main(["config", "show", "--store", str(store)])
    assert code in (0, 1)


@pytest.mark.parametrize(
    "toml", ["encryption_keys = 5", "providers = { everifin = 5 }"], ids=["keys", "provider"]
)
def test_a_config_value_of_the_wrong_type_is_a_typed_error(
    toml: str, workdir: Path, tmp_path: Path
) -> None:
    """An operator's typo in the config file ends ``config show`` in a TypeError traceback
    ('int' object is not iterable) instead of an error line naming the setting."""
    config = tmp_path / "config.toml"
    config.write_text(toml + "\n")
    config.chmod(0o600)
    assert main(["config", "show", "--config", str(config)]) == 1
