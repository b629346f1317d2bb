"""Attack: another local user plants "remembered settings" that the CLI then obeys.

Remembered settings fill every provider setting left to a default, the token endpoint
included: whoever writes them receives the client secret and every refresh token renewed.
They come only from a file beside a local SQLite store that no one else can write (owner
and mode checked, no symbolic link, a directory others cannot write), and never from a
path derived from a Redis URL (``Path("redis://h:p/0")`` is ``./redis:/h:p/0`` under
whatever directory the worker was started in).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from aiofinaccess.cli.main import main
from tests.support.redis_server import running_redis

ATTACKER = "https://attacker.example/auth"
PLANTED = {"providers": {"everifin": {"idp_url": ATTACKER, "client_id": "prod-client"}}}


def plant(path: Path, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(PLANTED))
    path.chmod(mode)


def show(store: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["config", "show", "--json", "--store", store])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_a_redis_store_takes_no_settings_from_the_working_directory(
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``config show`` and a real worker on a real Redis, started in a directory where
    another user planted ``redis:/127.0.0.1:PORT/0.settings.json``: neither obeys it."""
    monkeypatch.chdir(tmp_path)
    async with running_redis() as url:
        plant(tmp_path / (url.replace("//", "/") + ".settings.json"))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aiofinaccess", "worker", "--store", url,
            env={**env, "AIOFINACCESS_EVERIFIN_CLIENT_SECRET": "prod-secret"},
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            async with asyncio.timeout(60):
                first = (await process.stdout.readline()).decode()
        finally:
            if "worker started" in first:
                process.kill()
        _, stderr = await process.communicate()
        assert "worker started" not in first, f"the worker obeyed planted settings: {first}"
        assert process.returncode == 1
        assert "no provider to renew" in stderr.decode()

        code, out, err = await asyncio.to_thread(show, url, capsys)
        assert (code, err) == (0, "")
        assert json.loads(out)["providers"] == []


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_remembered_settings_others_can_write_are_refused(
    mode: int, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "data" / "tokens.db"
    plant(store.with_name("tokens.db.settings.json"), mode)
    store.parent.chmod(0o700)
    code, _, err = show(str(store), capsys)
    assert code == 1
    assert "writable by others" in err
    assert ATTACKER not in err


def test_remembered_settings_through_a_symlink_are_refused(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "data" / "tokens.db"
    plant(tmp_path / "elsewhere.json")
    store.parent.mkdir(mode=0o700)
    store.with_name("tokens.db.settings.json").symlink_to(tmp_path / "elsewhere.json")
    code, _, err = show(str(store), capsys)
    assert code == 1
    assert "symbolic link" in err


def test_remembered_settings_of_another_user_are_refused(
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Seen as another user would see them (the effective uid is the only one compared)."""
    store = tmp_path / "data" / "tokens.db"
    plant(store.with_name("tokens.db.settings.json"))
    store.parent.chmod(0o700)
    owner = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: owner + 4242)
    code, _, err = show(str(store), capsys)
    assert code == 1
    assert f"belong to uid {owner}" in err


def test_remembered_settings_in_a_directory_others_can_write_are_refused(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Others could swap the file there (sticky or not)."""
    store = tmp_path / "data" / "tokens.db"
    plant(store.with_name("tokens.db.settings.json"))
    store.parent.chmod(0o1777)
    code, _, err = show(str(store), capsys)
    assert code == 1
    assert "is shared (sticky, writable by everyone)" in err


def test_private_remembered_settings_are_used(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Control: our own 0600 file in a private directory is read."""
    store = tmp_path / "data" / "tokens.db"
    plant(store.with_name("tokens.db.settings.json"))
    store.parent.chmod(0o700)
    code, out, err = show(str(store), capsys)
    assert (code, err) == (0, "")
    (provider,) = json.loads(out)["providers"]
    assert provider["settings"]["idp_url"] == {"value": ATTACKER, "source": "remembered"}
