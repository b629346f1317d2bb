"""Beyond the review's tests (issue 22, review of the CLI store setting): a table where a
prefix belongs, a password in the user-name slot or in the db, a remembered value of the
wrong type."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiofinaccess.cli.main import main

PASSWORD = "s3cret-pw"


@pytest.fixture
def workdir(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cwd"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def config(tmp_path: Path, text: str, mode: int) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    path.chmod(mode)
    return str(path)


def test_a_table_as_the_redis_prefix_is_refused(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was str()-ed into the prefix "{'a': 1}" and used."""
    path = config(tmp_path, 'store = "redis://127.0.0.1:1/0"\nredis_prefix = { a = 1 }', 0o600)
    assert main(["config", "show", "--config", path]) == 1
    assert "redis_prefix" in capsys.readouterr().err


def test_a_password_in_the_user_name_slot_needs_a_private_config(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``redis://s3cret@host`` (the ``:`` forgotten) puts the password where the user name
    goes: a config file others can read with it is refused like one with ``:s3cret@``."""
    path = config(tmp_path, f'store = "redis://{PASSWORD}@127.0.0.1:1/0"', 0o644)
    assert main(["config", "show", "--config", path]) == 1
    assert "holds secrets and is readable by others" in capsys.readouterr().err


def test_a_db_that_is_no_number_is_never_printed(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``describe`` printed the query's db as given: a password pasted there was shown."""
    code = main(["config", "show", "--store", f"redis://127.0.0.1:1?db={PASSWORD}"])
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
    assert code == 1


def test_a_remembered_value_of_the_wrong_type_is_a_typed_error(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A remembered client id of 5 was taken as it was (and str()-ed into "5" later); it is
    refused where it is read, naming the setting and the file."""
    store = tmp_path / "data" / "tokens.db"
    store.parent.mkdir(mode=0o700)
    settings = store.with_name("tokens.db.settings.json")
    settings.write_text('{"providers": {"corp": {"type": "oidc", "client_id": 5}}}\n')
    settings.chmod(0o600)
    assert main(["config", "show", "--store", str(store)]) == 1
    assert "providers.corp.client_id" in capsys.readouterr().err
