"""The command line remembers provider settings, takes global flags anywhere, shows its version,
draws with rich on a terminal and stays plain (and JSON) when piped; secrets come from the
environment, a file or the keyring and are never remembered or shown."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

from aiofinaccess.sandbox import Sandbox
from tests.cli.test_cli import login, run_cli

ANSI = re.compile(r"\x1b\[")


async def _log_in(env: dict[str, str], sandbox: Sandbox, store: Path, *args: str) -> str:
    code, out, err, _ = await login(
        env, "everifin", "--sandbox", sandbox.base_url, "--subject", "alice",
        "--store", str(store), *args,
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    return out


async def test_settings_are_remembered_after_login(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    """``tokens refresh everifin alice`` right after ``login --sandbox`` needed every flag again."""
    store = tmp_path / "tokens.db"
    out = await _log_in(env, sandbox, store)
    assert "settings of everifin remembered (no secret): aiofinaccess config show" in out

    code, out, err = await run_cli(
        env, "tokens", "refresh", "everifin", "alice", "--store", str(store)
    )
    assert (code, err) == (0, "")
    assert out.startswith("refreshed everifin alice: access token valid for")

    remembered = store.with_name("tokens.db.settings.json")
    assert stat.S_IMODE(remembered.stat().st_mode) == 0o600
    saved = json.loads(remembered.read_text())["providers"]["everifin"]
    assert saved == {"sandbox": sandbox.base_url}  # the sandbox's URLs and client follow from it
    assert sandbox.config.everifin_client_secret not in remembered.read_text()

    code, out, err = await run_cli(env, "config", "show", "--store", str(store))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{'store:':<21}{store} (exists)"
    assert lines[1] == f"{'remembered settings:':<21}{remembered}"
    assert "everifin (everifin)" in lines
    assert re.search(rf"sandbox\s+{re.escape(sandbox.base_url)}\s+remembered", out)
    assert re.search(rf"idp_url\s+{re.escape(sandbox.idp_url)}\s+sandbox", out)
    assert re.search(r"client_id\s+everifin-sandbox-client\s+sandbox", out)
    assert re.search(r"client_secret\s+client_secret \(sandbox\)", out)
    assert sandbox.config.everifin_client_secret not in out


async def test_flags_win_over_remembered_settings_and_secrets_come_from_a_file_or_keyring(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    """A real client: id remembered, secret from a file, then from the keyring; never stored."""
    store = tmp_path / "tokens.db"
    secret_file = tmp_path / "everifin-secret"
    secret_file.write_text(sandbox.config.everifin_client_secret + "\n")
    env["AIOFINACCESS_EVERIFIN_CLIENT_SECRET_FILE"] = str(secret_file)
    await _log_in(env, sandbox, store, "--client-id", sandbox.config.everifin_client_id,
                  "--idp-url", sandbox.idp_url, "--api-url", sandbox.api_url)  # fmt: skip
    saved = json.loads(store.with_name("tokens.db.settings.json").read_text())
    everifin = saved["providers"]["everifin"]
    assert everifin["client_id"] == sandbox.config.everifin_client_id
    assert everifin["client_secret_file"] == str(secret_file)  # a path is not a secret
    assert "client_secret" not in everifin

    del env["AIOFINACCESS_EVERIFIN_CLIENT_SECRET_FILE"]
    secret_file.unlink()
    code, out, err = await run_cli(
        env, "tokens", "refresh", "everifin", "alice", "--store", str(store)
    )
    assert code == 1
    assert err == (
        f"aiofinaccess tokens refresh: remembered client_secret_file {secret_file}: "
        "No such file or directory\n"
    )

    env["PYTHON_KEYRING_BACKEND"] = "tests.support.keyring_backend.FileKeyring"
    env["AIOFINACCESS_TEST_KEYRING"] = str(tmp_path / "keyring.json")
    env["AIOFINACCESS_EVERIFIN_CLIENT_SECRET_KEYRING"] = "1"
    code, out, err = await run_cli(
        env, "config", "set-secret", "everifin", "--store", str(store),
        stdin=sandbox.config.everifin_client_secret + "\n",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "stored the client secret of everifin in the system keyring" in out
    keyring = json.loads((tmp_path / "keyring.json").read_text())
    assert keyring == {"aiofinaccess/everifin": sandbox.config.everifin_client_secret}
    code, out, err = await run_cli(
        env, "tokens", "refresh", "everifin", "alice", "--store", str(store),
    )  # fmt: skip
    assert (code, err) == (0, "")
    code, out, err = await run_cli(
        env, "config", "show", "everifin", "--json", "--store", str(store)
    )
    shown = json.loads(out)
    assert shown["providers"][0]["client_secret"] == "keyring (environment)"


async def test_global_flags_go_anywhere_and_v_shows_only_our_log(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    """``aiofinaccess -v users create`` failed with "unrecognized arguments: -v"."""
    store = tmp_path / "tokens.db"
    code, out, err = await run_cli(
        env, "-v", "--store", str(store), "users", "create", "--sandbox", sandbox.base_url,
        "--user-id", "dave", "--password-stdin", "--login", stdin="dave-password-1\n",
    )  # fmt: skip
    assert code == 0, err
    assert "created finAPI user dave" in out
    assert "DEBUG aiofinaccess" in err
    assert [
        line for line in err.splitlines() if not line.split()[1].startswith("aiofinaccess")
    ] == []

    code, out, err = await run_cli(
        env, "tokens", "refresh", "finapi", "dave", "-vv", "--store", str(store)
    )
    assert code == 0, err
    assert "DEBUG aiosqlite" in err or "DEBUG asyncio" in err  # -vv: every library's log

    code, out, err = await run_cli(
        env, "tokens", "refresh", "finapi", "dave", "--store", str(store)
    )
    assert (code, err) == (0, "")  # quiet without -v


async def test_version(env: dict[str, str]) -> None:
    code, out, err = await run_cli(env, "--version")
    assert (code, err) == (0, "")
    assert re.fullmatch(r"aiofinaccess \d+\.\d+\.\d+\S*\n", out)


async def test_rich_on_a_terminal_plain_when_piped_json_always(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    """FORCE_COLOR stands in for a terminal (as it does for rich); --json never changes."""
    store = tmp_path / "tokens.db"
    await _log_in(env, sandbox, store)

    code, piped, err = await run_cli(env, "tokens", "list", "--store", str(store))
    assert (code, err) == (0, "")
    assert not ANSI.search(piped)
    assert piped.splitlines()[0].split() == [
        "PROVIDER",
        "SUBJECT",
        "ACCESS",
        "TOKEN",
        "REFRESH",
        "TOKEN",
        "SCOPE",
    ]

    terminal = {**env, "FORCE_COLOR": "1", "COLUMNS": "120"}
    code, drawn, err = await run_cli(terminal, "tokens", "list", "--store", str(store))
    assert (code, err) == (0, "")
    assert ANSI.search(drawn)
    assert "━" in drawn or "─" in drawn  # a rich table's rules
    assert "alice" in drawn

    for environment in (env, terminal):
        code, out, err = await run_cli(
            environment, "tokens", "list", "--json", "--store", str(store)
        )
        assert [row["subject"] for row in json.loads(out)] == ["alice"]
        code, out, err = await run_cli(
            environment, "config", "show", "--json", "--store", str(store)
        )
        assert json.loads(out)["providers"][0]["name"] == "everifin"

    code, out, err = await run_cli(
        terminal, "tokens", "show", "everifin", "nobody", "--store", str(store)
    )
    assert code == 1
    assert ANSI.search(err)
    assert "error:" in err
    assert "no token set for everifin nobody" in err


async def test_login_shows_a_spinner_on_a_terminal(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    terminal = {**env, "FORCE_COLOR": "1"}
    code, out, err, _ = await login(
        terminal, "everifin", "--sandbox", sandbox.base_url, "--subject", "alice",
        "--store", str(tmp_path / "tokens.db"),
    )  # fmt: skip
    assert code == 0, err
    assert "Waiting for the login in the browser (300 s)" in err
    assert "Logged in to everifin as alice" in out


async def test_a_file_in_the_store_path_is_named(env: dict[str, str], tmp_path: Path) -> None:
    """``SQLiteStore("/etc/hostname/tokens.db")`` said "directory does not exist"."""
    hostname = tmp_path / "hostname"
    hostname.write_text("box\n")
    code, _, err = await run_cli(
        env,
        "users",
        "create",
        "--sandbox",
        "http://127.0.0.1:1",
        "--store",
        str(hostname / "tokens.db"),
    )
    assert code == 1
    assert err == (
        f"aiofinaccess users create: store path {hostname / 'tokens.db'}: "
        f"{hostname} is a file, not a directory\n"
    )
