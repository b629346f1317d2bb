"""The ``aiofinaccess`` command line: login through a loopback redirect, tokens, users, help.

The login test runs the CLI as a user would (a subprocess), reads the URL it prints, logs in
with the sandbox's headless login, and delivers the redirect to the CLI's loopback server.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from aiofinaccess import SQLiteStore, TokenKey
from aiofinaccess.cli.main import main
from aiofinaccess.sandbox import Sandbox, headless_login

ALICE = TokenKey("everifin", "alice")


async def run_cli(env: dict[str, str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run ``python -m aiofinaccess ARGS``; return exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiofinaccess",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def login(env: dict[str, str], *args: str, cancel: bool = False) -> tuple[int, str, str, URL]:
    """Start ``login``, log in headlessly at the URL it prints, deliver the redirect to it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiofinaccess",
        "login",
        *args,
        "--no-browser",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            printed = []
            while not (line := (await process.stdout.readline()).decode()).startswith("http"):
                assert line, "login exited before printing the URL"
                printed.append(line)
        assert "Open this URL" in "".join(printed)
        async with aiohttp.ClientSession() as browser:
            callback = await headless_login(
                browser, line.strip(), "alice", "alice-password", cancel=cancel
            )
            assert callback.host == "127.0.0.1"
            assert callback.port != 80  # a free port the CLI picked
            async with browser.get(callback) as response:
                page = await response.text()
                assert ("Logged in" in page) is (not cancel)
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, out.decode(), err.decode(), callback


async def test_login_everifin_then_tokens_are_listed_redacted(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    """Flags, environment and config file together; every output free of token values."""
    config = tmp_path / "aiofinaccess.toml"
    store = tmp_path / "tokens.db"
    config.write_text(
        f'store = "{store}"\n\n[providers.everifin]\n'
        f'idp_url = "{sandbox.idp_url}"\napi_url = "{sandbox.api_url}"\n'
    )
    config.chmod(0o600)  # readable by others would be warned about on stderr
    env["AIOFINACCESS_EVERIFIN_CLIENT_ID"] = sandbox.config.everifin_client_id
    env["AIOFINACCESS_EVERIFIN_CLIENT_SECRET"] = sandbox.config.everifin_client_secret

    code, out, err, _ = await login(env, "everifin", "--config", str(config), "--subject", "alice")
    assert (code, err) == (0, "")
    assert f"Logged in to everifin as alice; stored in {store}" in out
    assert sandbox.stats()["token_requests"]["everifin_authorization_code"] == 1

    async with SQLiteStore(store) as opened:
        stored = await opened.get(ALICE)
    assert stored is not None
    secrets = [stored.token_set.access_token.reveal()]
    assert stored.token_set.refresh_token is not None
    secrets.append(stored.token_set.refresh_token.reveal())

    outputs = [out]
    code, out, err = await run_cli(env, "tokens", "list", "--config", str(config))
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header.split()[:2] == ["PROVIDER", "SUBJECT"]
    assert row.split()[:2] == ["everifin", "alice"]
    assert "valid for" in row
    outputs.append(out)
    for args in (["show", "everifin", "alice"], ["show", "everifin", "alice", "--json"]):
        code, out, err = await run_cli(env, "tokens", *args, "--store", str(store))
        assert (code, err) == (0, "")
        outputs.append(out)
    shown = json.loads(outputs[-1])
    assert shown["access_token"] == f"#{stored.token_set.access_token.fingerprint()[:8]}"
    assert shown["subject"] == "alice"
    code, out, err = await run_cli(env, "tokens", "list", "--json", "--store", str(store))
    assert [entry["subject"] for entry in json.loads(out)] == ["alice"]
    outputs.append(out)

    # refresh and revoke need the provider: here from --sandbox instead of the config file
    code, out, err = await run_cli(
        env, "tokens", "refresh", "everifin", "alice", "--store", str(store),
        "--sandbox", sandbox.base_url,
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "refresh token rotated" in out
    outputs.append(out)
    async with SQLiteStore(store) as opened:
        refreshed = await opened.get(ALICE)
    assert refreshed is not None
    secrets.append(refreshed.token_set.access_token.reveal())
    for output in outputs:
        for secret in secrets:
            assert secret not in output

    code, out, err = await run_cli(
        env, "tokens", "revoke", "everifin", "alice", "--config", str(config)
    )
    assert (code, err) == (0, "")
    assert sandbox.stats()["token_requests"]["everifin_revoke"] == 1
    code, out, err = await run_cli(env, "tokens", "list", "--store", str(store))
    assert out.strip() == f"no token sets in {store}"
    code, out, err = await run_cli(
        env, "tokens", "delete", "everifin", "alice", "--store", str(store)
    )
    assert code == 1
    assert err.splitlines() == [
        f"aiofinaccess tokens delete: no token set for everifin alice in {store}"
    ]


async def test_a_cancelled_login_fails_in_one_line(sandbox: Sandbox, env: dict[str, str]) -> None:
    code, _, err, _ = await login(env, "everifin", "--sandbox", sandbox.base_url, cancel=True)
    assert code == 1
    assert err.splitlines() == [
        "aiofinaccess login everifin: authorization failed: access_denied (User cancelled login)"
    ]
    assert "Traceback" not in err


async def test_login_oidc_discovers_the_issuer(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    """Any OIDC server: endpoints from discovery, tokens under the given name (default store)."""
    secret = tmp_path / "client-secret"
    secret.write_text(sandbox.config.everifin_client_secret)
    code, out, err, _ = await login(
        env, "oidc", "--name", "kc", "--issuer", sandbox.issuer, "--scope", "ais",
        "--client-id", sandbox.config.everifin_client_id,
        "--client-secret-file", str(secret), "--subject", "alice",
    )  # fmt: skip
    assert (code, err) == (0, "")
    default_store = tmp_path / "data" / "aiofinaccess" / "tokens.db"
    assert f"stored in {default_store}" in out
    assert (default_store.stat().st_mode & 0o777) == 0o600
    async with SQLiteStore(default_store) as opened:
        assert await opened.get(TokenKey("kc", "alice")) is not None


async def test_users_create_and_login_at_finapi(sandbox: Sandbox, env: dict[str, str]) -> None:
    code, out, err = await run_cli(
        env, "users", "create", "--sandbox", sandbox.base_url, "--user-id", "carol",
        "--password-stdin", "--login", stdin="carol-password-1\n",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "created finAPI user carol" in out
    assert "carol-password-1" not in out
    code, out, err = await run_cli(env, "tokens", "list", "--provider", "finapi")
    rows = [line.split()[:2] for line in out.splitlines()[1:]]
    assert ["finapi", "carol"] in rows
    code, out, err = await run_cli(
        env, "users", "create", "--sandbox", sandbox.base_url, "--user-id", "carol",
        "--show-password",
    )  # fmt: skip
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "ENTITY_EXISTS" in err or "exists" in err


COMMANDS = [
    [],
    ["demo"],
    ["sandbox"],
    ["login"],
    ["login", "everifin"],
    ["login", "oidc"],
    ["tokens"],
    *(["tokens", action] for action in ("list", "show", "refresh", "revoke", "delete")),
    ["users"],
    ["users", "create"],
    ["config"],
    ["config", "show"],
    ["config", "set-secret"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "aiofinaccess")
def test_help_works_for_every_command(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: aiofinaccess {' '.join(command)}".rstrip())


@pytest.mark.parametrize(
    "argv",
    [
        ["tokens", "list", "--bogus"],
        ["login", "everifin", "--timeout", "-1"],
        ["login", "oidc"],  # --name is required
        ["tokens", "frobnicate"],
        ["users", "create", "--api-version", "v9"],
    ],
)
def test_a_bad_option_exits_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("aiofinaccess")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["tokens", "show", "everifin", "nobody"], "tokens.db: no such file"),
        (["tokens", "list", "--config", "/nonexistent/aiofinaccess.toml"], "cannot read config"),
        (["login", "oidc", "--name", "corp", "--client-id", "x"], "give --issuer"),
        (["login", "everifin", "--sandbox", "http://127.0.0.1:1", "--no-browser",
          "--timeout", "0.3"], "no login within 0.3 s"),
        (["tokens", "refresh", "everifin", "alice"], "no client id for everifin"),
    ],
)  # fmt: skip
def test_expected_failures_exit_1_with_one_line(
    argv: list[str], reason: str, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert reason in err


def test_a_broken_config_file_is_one_line(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config" / "aiofinaccess" / "config.toml"  # the default location
    config.parent.mkdir(parents=True)
    config.write_text("store = [unclosed\n")
    assert main(["tokens", "list"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "not valid TOML" in err
