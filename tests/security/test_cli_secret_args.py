"""Attack: a co-located user reads the client secret from the CLI's command line.

Every local user can read ``/proc/PID/cmdline`` (``ps -ef``), so ``--client-secret VALUE``
publishes the secret for as long as the command runs, and shell history keeps it. The CLI now
takes the secret from a file (``--client-secret-file PATH``), from stdin
(``--client-secret -``) or from ``AIOFINACCESS_<NAME>_CLIENT_SECRET``, and warns on stderr when
it is given on the command line. Each way is proven by a finAPI sandbox that only accepts the
right secret.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path

import pytest

from aiofinaccess.cli.main import main
from aiofinaccess.sandbox import Sandbox

WARNING = "visible to other local users"


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("AIOFINACCESS_FINAPI_CLIENT_SECRET", "AIOFINACCESS_CONFIG"):
        monkeypatch.delenv(name, raising=False)


async def create_user(sandbox: Sandbox, tmp_path: Path, *secret_args: str) -> int:
    """``users create`` against the sandbox: exit 0 only if the right secret was sent.

    Each call gets a fresh store, so no client token stored by an earlier call is reused.
    """
    store = tmp_path / f"t-{uuid.uuid4().hex}.db"
    argv = ["users", "create", "--store", str(store), "--base-url", sandbox.base_url]
    argv += ["--show-password", "--client-id", sandbox.config.finapi_client_id, *secret_args]
    return await asyncio.to_thread(main, argv)


async def test_client_secret_from_a_file(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--client-secret-file``: read from the file, nothing on the command line, no warning."""
    secret = tmp_path / "secret"
    secret.write_text(sandbox.config.finapi_client_secret + "\n")
    secret.chmod(0o600)
    assert await create_user(sandbox, tmp_path, "--client-secret-file", str(secret)) == 0
    assert WARNING not in capsys.readouterr().err
    secret.write_text("wrong-secret\n")
    assert await create_user(sandbox, tmp_path, "--client-secret-file", str(secret)) == 1


async def test_client_secret_from_stdin(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--client-secret -`` reads one line from stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO(sandbox.config.finapi_client_secret + "\n"))
    assert await create_user(sandbox, tmp_path, "--client-secret", "-") == 0
    assert WARNING not in capsys.readouterr().err


async def test_client_secret_from_the_environment(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``AIOFINACCESS_FINAPI_CLIENT_SECRET``: the environment is private to the process."""
    monkeypatch.setenv("AIOFINACCESS_FINAPI_CLIENT_SECRET", sandbox.config.finapi_client_secret)
    assert await create_user(sandbox, tmp_path) == 0
    assert WARNING not in capsys.readouterr().err


async def test_client_secret_on_the_command_line_warns(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The flag still works, with a warning that names safer ways (and not the secret)."""
    secret = sandbox.config.finapi_client_secret
    assert await create_user(sandbox, tmp_path, "--client-secret", secret) == 0
    err = capsys.readouterr().err
    assert WARNING in err
    assert "--client-secret-file" in err
    assert secret not in err


def test_secret_flag_and_file_together_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two sources for one secret is a mistake to report, not a precedence to guess."""
    secret = tmp_path / "secret"
    secret.write_text("s")
    argv = ["users", "create", "--store", str(tmp_path / "t.db"), "--client-id", "c"]
    argv += ["--client-secret", "-", "--client-secret-file", str(secret)]
    assert main(argv) == 1
    assert "not both" in capsys.readouterr().err


def test_empty_secret_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty file is a mistake (a public client passes no secret at all)."""
    secret = tmp_path / "secret"
    secret.write_text("\n")
    argv = ["users", "create", "--store", str(tmp_path / "t.db"), "--client-id", "c"]
    assert main([*argv, "--client-secret-file", str(secret)]) == 1
    assert "empty" in capsys.readouterr().err
