"""An absent store is not an empty one: ``tokens list`` on a mistyped path says the file does
not exist and exits 1, and creates nothing (issue 24, item 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aiofinaccess import SQLiteStore
from aiofinaccess.cli.main import main


@pytest.mark.parametrize(
    "argv",
    [["tokens", "list"], ["tokens", "list", "--json"], ["tokens", "show", "finapi"]],
    ids=" ".join,
)
def test_a_store_that_does_not_exist_is_an_error(
    argv: list[str], env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "tokns.db"
    assert main([*argv, "--store", str(typo)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"aiofinaccess tokens {argv[1]}: no token store at {typo}: no such file"
    ]
    assert not typo.exists()


def test_an_empty_store_lists_nothing_and_succeeds(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens.db"

    async def create() -> None:
        async with SQLiteStore(path) as store:
            await store.get_many([])

    asyncio.run(create())
    assert main(["tokens", "list", "--store", str(path)]) == 0
    assert capsys.readouterr().out == f"no token sets in {path}\n"


@pytest.mark.parametrize("action", ["refresh", "revoke"])
def test_refresh_and_revoke_on_a_store_that_does_not_exist_create_none(
    action: str, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "tokns.db"
    argv = ["tokens", action, "finapi", "--store", str(typo), "--sandbox", "http://127.0.0.1:1"]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"aiofinaccess tokens {action}: no token store at {typo}: no such file"
    ]
    assert not typo.exists()
