"""Messages name a setting as the user gave it (the flag, the variable, the config file's
key), never the SDK's parameter (``token_url``, ``allow_insecure_http=True``) (issue 24,
item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiofinaccess.cli.main import main

LOGIN = ["--client-id", "x", "--no-browser", "--timeout", "0.1"]


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "allow_insecure_http=True" not in err
    return err


def test_plain_http_from_a_flag_names_the_flags(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(
        ["login", "oidc", "--name", "corp", "--token-url", "http://example.com/t", *LOGIN], capsys
    )
    assert "--token-url uses plain http on a non-loopback host (example.com)" in err
    assert "--allow-insecure-http" in err


def test_plain_http_from_the_environment_names_the_variables(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIOFINACCESS_EVERIFIN_IDP_URL", "http://example.com/auth")
    err = _error(["login", "everifin", *LOGIN], capsys)
    assert "AIOFINACCESS_EVERIFIN_IDP_URL uses plain http" in err
    assert "AIOFINACCESS_EVERIFIN_ALLOW_INSECURE_HTTP=1" in err


def test_plain_http_from_the_config_file_names_its_keys(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[providers.corp]\ntype = "oidc"\ntoken_url = "http://example.com/t"\n')
    config.chmod(0o600)
    err = _error(["login", "oidc", "--name", "corp", "--config", str(config), *LOGIN], capsys)
    assert "[providers.corp] token_url in the config file uses plain http" in err
    assert "allow_insecure_http = true" in err


def test_finapi_takes_the_flag_it_is_told_to_pass(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(
        ["users", "create", "--base-url", "http://example.com", "--client-id", "x"], capsys
    )
    assert "--base-url uses plain http" in err
    assert "--allow-insecure-http" in err


def test_a_secret_file_from_the_environment_names_the_variable(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIOFINACCESS_EVERIFIN_CLIENT_SECRET_FILE", "/nonexistent/secret")
    err = _error(["login", "everifin", "--sandbox", "http://127.0.0.1:1", *LOGIN], capsys)
    assert "AIOFINACCESS_EVERIFIN_CLIENT_SECRET_FILE /nonexistent/secret:" in err
