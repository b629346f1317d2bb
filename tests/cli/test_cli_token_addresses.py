"""``tokens show|delete|refresh|revoke`` address exactly the rows ``tokens list`` prints: a
client token's key names its client (``id#fingerprint``), and several clients' sets of one
provider are told apart (issue 24, item 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aiofinaccess import SQLiteStore, TokenKey
from aiofinaccess.cli.main import main
from aiofinaccess.sandbox import Sandbox
from tests.stores.contract import sample

SANDBOX = TokenKey("finapi", client="finapi-sandbox-client#0123456789abcdef")
OTHER = TokenKey("finapi", client="other-client#fedcba9876543210")


async def _fill(path: Path, *keys: TokenKey) -> None:
    async with SQLiteStore(path) as store:
        for key in keys:
            await store.put(key, sample(), expected_version=None)


def _subjects(out: str) -> list[str]:
    """The SUBJECT column of a plain ``tokens list``."""
    return [line[10:].split("  ")[0] for line in out.splitlines()[1:]]


def test_the_client_row_list_prints_is_shown_and_deleted(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "tokens.db")
    asyncio.run(_fill(Path(store), SANDBOX, TokenKey("finapi", "u1")))
    assert main(["tokens", "list", "--store", store]) == 0
    assert _subjects(capsys.readouterr().out) == ["(client)", "u1"]
    assert main(["tokens", "show", "finapi", "--store", store]) == 0
    shown = capsys.readouterr().out
    assert "client:" in shown
    assert "finapi-sandbox-client#0123456789abcdef" in shown
    assert main(["tokens", "delete", "finapi", "--store", store]) == 0
    assert "deleted the token set of finapi (client)" in capsys.readouterr().out
    assert main(["tokens", "list", "--store", store]) == 0
    assert _subjects(capsys.readouterr().out) == ["u1"]


def test_several_clients_are_told_apart_and_an_ambiguous_address_lists_them(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "tokens.db")
    asyncio.run(_fill(Path(store), SANDBOX, OTHER))
    assert main(["tokens", "list", "--store", store]) == 0
    assert _subjects(capsys.readouterr().out) == [
        "(client finapi-sandbox-client)",
        "(client other-client)",
    ]
    assert main(["tokens", "show", "finapi", "--store", store]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "aiofinaccess tokens show: finapi has 2 client token sets in "
        f"{store}: choose one with --client (finapi-sandbox-client, other-client)"
    ]
    assert main(["tokens", "show", "finapi", "--client", "other-client", "--store", store]) == 0
    assert "other-client#fedcba9876543210" in capsys.readouterr().out
    assert main(["tokens", "delete", "finapi", "--client", "nobody", "--store", store]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "aiofinaccess tokens delete: no client token set of nobody for finapi in "
        f"{store} (stored: finapi-sandbox-client, other-client)"
    ]


async def test_refresh_renews_the_client_row(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "tokens.db")
    flags = ["--store", store, "--sandbox", sandbox.base_url]
    create = ["users", "create", "--user-id", "u1", "--show-password", *flags]
    assert await asyncio.to_thread(main, create) == 0
    assert await asyncio.to_thread(main, ["tokens", "refresh", "finapi", *flags]) == 0
    assert "refreshed finapi (client)" in capsys.readouterr().out
    requests = sandbox.stats()["token_requests"]
    assert requests["finapi_client_credentials"] == 2


def test_refresh_refuses_another_clients_row_before_any_request(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "tokens.db")
    asyncio.run(_fill(Path(store), SANDBOX, OTHER))
    argv = ["tokens", "refresh", "finapi", "--client", "other-client", "--store", store]
    assert main([*argv, "--sandbox", "http://127.0.0.1:1"]) == 1  # nothing listens there
    assert capsys.readouterr().err.splitlines() == [
        "aiofinaccess tokens refresh: the token set of finapi (client other-client) belongs to "
        "another client than finapi-sandbox-client with this secret: give its --client-id and "
        "secret"
    ]
