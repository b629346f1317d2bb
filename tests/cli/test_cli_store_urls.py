"""Every command opens the store its settings name, the same way: a SQLite path, or a Redis
URL from ``--store``, ``AIOFINACCESS_STORE`` or the config file (``rediss+cluster://`` too),
with the encryption keys and a password from the environment or a file. An unknown scheme is
refused; a URL is never taken for a path (which made directories named after it, password
and all, and a worker that renewed nothing)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiofinaccess import TokenKey, TokenSet
from aiofinaccess.cli.main import main
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import running_redis

KEY = TokenKey("everifin", "alice")
TOKENS = TokenSet(access_token="AT-alice", refresh_token="RT-alice")
PASSWORD = "s3cret-pw"
WARNING = "visible to other local users"


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A real redis-server holding one token set (plain JSON) under the default prefix."""
    async with running_redis() as url:
        store = RedisStore(url)
        await store.put(KEY, TOKENS, expected_version=None)
        await store.aclose()
        yield url


@pytest.fixture
def workdir(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, where a URL taken for a path would have made directories."""
    directory = tmp_path / "cwd"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def untouched(directory: Path) -> bool:
    """Nothing was created in ``directory``."""
    return not any(directory.iterdir())


def listed(capsys: pytest.CaptureFixture[str], *argv: str) -> list[tuple[str, str | None]]:
    code = main(["tokens", "list", "--json", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return [(row["provider"], row["subject"]) for row in json.loads(captured.out)]


def test_a_redis_url_from_the_store_flag(
    redis_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert listed(capsys, "--store", redis_url) == [("everifin", "alice")]
    assert untouched(workdir)


def test_a_redis_url_from_the_environment(
    redis_url: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIOFINACCESS_STORE", redis_url)
    assert listed(capsys) == [("everifin", "alice")]
    assert untouched(workdir)


def test_a_redis_url_from_the_config_file(
    redis_url: str, workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'store = "{redis_url}"\n')
    config.chmod(0o600)
    assert listed(capsys, "--config", str(config)) == [("everifin", "alice")]
    code = main(["config", "show", "--json", "--config", str(config)])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    assert shown["store"] == redis_url
    assert shown["remembered_settings"] is None
    assert untouched(workdir)


async def test_the_password_comes_from_the_environment_or_a_file(
    workdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_redis(password=PASSWORD) as url:
        store = RedisStore(url.replace("redis://", f"redis://:{PASSWORD}@"))
        await store.put(KEY, TOKENS, expected_version=None)
        await store.aclose()
        monkeypatch.setenv("AIOFINACCESS_REDIS_PASSWORD", PASSWORD)
        assert await asyncio.to_thread(listed, capsys, "--store", url) == [("everifin", "alice")]
        monkeypatch.delenv("AIOFINACCESS_REDIS_PASSWORD")
        secret = tmp_path / "redis-password"
        secret.write_text(PASSWORD + "\n")
        secret.chmod(0o600)
        monkeypatch.setenv("AIOFINACCESS_REDIS_PASSWORD_FILE", str(secret))
        assert await asyncio.to_thread(listed, capsys, "--store", url) == [("everifin", "alice")]
        monkeypatch.delenv("AIOFINACCESS_REDIS_PASSWORD_FILE")
        assert await asyncio.to_thread(
            listed, capsys, "--store", url, "--redis-password-file", str(secret)
        ) == [("everifin", "alice")]
        # In a URL: private in the environment, published in a flag (ps, /proc): warned.
        with_password = url.replace("redis://", f"redis://:{PASSWORD}@")
        monkeypatch.setenv("AIOFINACCESS_STORE", with_password)
        assert await asyncio.to_thread(listed, capsys) == [("everifin", "alice")]
        assert WARNING not in capsys.readouterr().err
        code = await asyncio.to_thread(main, ["tokens", "list", "--json", "--store", with_password])
        err = capsys.readouterr().err
        assert code == 0
        assert WARNING in err
        assert PASSWORD not in err
        # Two passwords: a mistake to report, not a precedence to guess.
        monkeypatch.setenv("AIOFINACCESS_REDIS_PASSWORD", PASSWORD)
        assert await asyncio.to_thread(main, ["tokens", "list", "--store", with_password]) == 1
        assert "more than one" in capsys.readouterr().err
    assert untouched(workdir)


@pytest.mark.parametrize(
    ("store", "command"),
    [
        (f"rediss+cluster://:{PASSWORD}@127.0.0.1:1", ["config", "show"]),
        (f"REDIS+CLUSTER://:{PASSWORD}@127.0.0.1:1", ["config", "show"]),
        (f"postgres://user:{PASSWORD}@db.example/tokens", ["config", "show"]),
        (f"PostgreSQL://user:{PASSWORD}@db.example/tokens", ["config", "show"]),
        (f"mysql://user:{PASSWORD}@db.example/tokens", ["tokens", "list"]),
        (f"sqlite://user:{PASSWORD}@x/tokens.db", ["tokens", "list"]),
    ],
)
def test_no_url_becomes_a_path(
    store: str,
    command: list[str],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A cluster URL is a Redis store and a postgres:// URL a PostgreSQL one (named without
    their password); another scheme is refused by name. No directory is made, no password
    shown."""
    monkeypatch.setenv("AIOFINACCESS_STORE", store)
    code = main(command)
    captured = capsys.readouterr()
    assert untouched(workdir)
    assert PASSWORD not in captured.out + captured.err
    if "cluster" in store.lower():
        assert code == 0, captured.err
        assert "redis+cluster://127.0.0.1:1 (Redis)" in captured.out.replace("rediss+", "redis+")
    elif store.lower().startswith("postgres"):
        assert code == 0, captured.err
        assert "://db.example:5432/tokens (PostgreSQL)" in captured.out
    else:
        assert code == 1
        assert "must be a SQLite path, a Redis URL" in captured.err


async def test_users_create_login_stores_in_redis(
    sandbox: Sandbox, workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text(sandbox.config.finapi_client_secret)
    secret.chmod(0o600)
    async with running_redis() as url:
        argv = ["users", "create", "--login", "--show-password", "--user-id", "bob", "--store", url]
        argv += ["--base-url", sandbox.base_url, "--client-id", sandbox.config.finapi_client_id]
        code = await asyncio.to_thread(main, [*argv, "--client-secret-file", str(secret)])
        assert code == 0, capsys.readouterr().err
        store = RedisStore(url)
        try:
            keys = [key async for key in store.keys(None)]
        finally:
            await store.aclose()
    assert TokenKey("finapi", "bob") in keys
    assert untouched(workdir)


def test_a_config_file_with_a_store_password_must_be_private(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A password in the config file's store URL is a secret like a client secret there."""
    config = tmp_path / "config.toml"
    config.write_text(f'store = "redis://:{PASSWORD}@127.0.0.1:1/0"\n')
    config.chmod(0o644)
    assert main(["config", "show", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "holds secrets and is readable by others" in err
    assert PASSWORD not in err


async def test_the_redis_prefix_is_a_store_setting(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``AIOFINACCESS_REDIS_PREFIX`` reaches every command (the worker's ``--prefix`` too)."""
    async with running_redis() as url:
        store = RedisStore(url, prefix="app2:")
        await store.put(KEY, TOKENS, expected_version=None)
        await store.aclose()
        assert await asyncio.to_thread(listed, capsys, "--store", url) == []
        monkeypatch.setenv("AIOFINACCESS_REDIS_PREFIX", "app2:")
        assert await asyncio.to_thread(listed, capsys, "--store", url) == [("everifin", "alice")]
