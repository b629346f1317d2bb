"""Booleans given as text (environment, config file, remembered settings) are read strictly:
``allow_insecure_http=false`` once meant ``bool("false")``, plain HTTP switched on."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiofinaccess.cli.main import main

#: An OIDC provider whose token endpoint is plain http on a non-loopback host: refused unless
#: allow_insecure_http is on. No request is sent either way (no token set is stored).
REFRESH = ["tokens", "refresh", "corp", "alice", "--token-url", "http://idp.example/token"]
HTTP_REFUSED = "plain http on a non-loopback host"


@pytest.fixture(autouse=True)
def client_secret(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOFINACCESS_CORP_CLIENT_SECRET", "s")


def _refresh(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main([*REFRESH, "--client-id", "c", "--store", str(tmp_path / "t.db"), *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("text", ["false", "0", "no", "NO", "off", " False "])
def test_false_in_the_environment_keeps_plain_http_off(
    text: str,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIOFINACCESS_CORP_ALLOW_INSECURE_HTTP", text)
    code, err = _refresh(tmp_path, capsys)
    assert code == 1
    assert HTTP_REFUSED in err


def test_false_in_the_config_file_keeps_plain_http_off(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[providers.corp]\ntype = "oidc"\nallow_insecure_http = "false"\n')
    config.chmod(0o600)
    code, err = _refresh(tmp_path, capsys, "--config", str(config))
    assert code == 1
    assert HTTP_REFUSED in err


@pytest.mark.parametrize("text", ["true", "1", "yes", "On"])
def test_true_in_the_environment_turns_plain_http_on(
    text: str,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Control: a true value is obeyed (the command then finds no store)."""
    monkeypatch.setenv("AIOFINACCESS_CORP_ALLOW_INSECURE_HTTP", text)
    code, err = _refresh(tmp_path, capsys)
    assert code == 1
    assert HTTP_REFUSED not in err
    assert "no token store at" in err


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("AIOFINACCESS_CORP_ALLOW_INSECURE_HTTP", "maybe"),
        ("AIOFINACCESS_CORP_ALLOW_INSECURE_HTTP", ""),
        ("AIOFINACCESS_CORP_CLIENT_SECRET_KEYRING", "ja"),
        ("AIOFINACCESS_ACCEPT_UNBOUND_RECORDS", "sure"),
    ],
)
def test_anything_else_is_refused_with_a_clear_error(
    variable: str,
    text: str,
    *,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, text)
    code, err = _refresh(tmp_path, capsys)
    assert code == 1
    assert "must be true or false" in err
    assert variable.removeprefix("AIOFINACCESS_").removeprefix("CORP_").lower() in err
    assert HTTP_REFUSED not in err


def test_a_number_in_the_config_file_is_refused(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("accept_unbound_records = 1\n")
    config.chmod(0o600)
    code, err = _refresh(tmp_path, capsys, "--config", str(config))
    assert code == 1
    assert "accept_unbound_records" in err
    assert "must be true or false" in err
