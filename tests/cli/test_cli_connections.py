"""``aiofinaccess connections list``: the fleet's connections from the store, as any process
recorded them; ``--needs-action`` keeps those only the user can bring back."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from aiofinaccess.cli.main import main
from aiofinaccess.connections import ConnectionRegistry, ConnectionState, Observation
from aiofinaccess.core.clock import SYSTEM_CLOCK
from aiofinaccess.stores.sqlite import SQLiteStore


async def _record(path: Path) -> None:
    async with SQLiteStore(path) as store:
        registry = ConnectionRegistry(store, SYSTEM_CLOCK)
        ends = time.time() + 90 * 86_400
        await registry.observe("finapi", "alice", "42", Observation(expires_at=ends))
        blocked = Observation(blocked=ConnectionState.ACTION_REQUIRED, detail="XS2A")
        await registry.observe("finapi", "bob", "7", blocked)
        await registry.observe("everifin", "carol", "", Observation(expires_at=time.time() - 1))


def test_list_and_needs_action(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens.db"
    asyncio.run(_record(path))
    capsys.readouterr()
    assert main(["connections", "list", "--store", str(path)]) == 0
    out, _ = capsys.readouterr()
    rows = [line.split()[:4] for line in out.splitlines()[1:]]
    assert rows == [
        ["everifin", "carol", "(login)", "EXPIRED"],
        ["finapi", "alice", "42", "ACTIVE"],
        ["finapi", "bob", "7", "ACTION_REQUIRED"],
    ]
    assert main(["connections", "list", "--needs-action", "--json", "--store", str(path)]) == 0
    out, _ = capsys.readouterr()
    listed = json.loads(out)
    assert [(row["subject"], row["state"]) for row in listed] == [
        ("carol", "EXPIRED"),
        ("bob", "ACTION_REQUIRED"),
    ]
    assert (
        main(
            ["connections", "list", "--provider", "finapi", "--needs-action", "--store", str(path)]
        )
        == 0
    )
    out, _ = capsys.readouterr()
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["bob"]


def test_a_missing_store_is_an_error(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["connections", "list", "--store", str(tmp_path / "none.db")]) == 1
    _, err = capsys.readouterr()
    assert "no token store at" in err


def test_a_provider_filter_naming_no_known_provider_is_an_error(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--provider finpai`` (a typo) is not an empty listing: it names the store's providers."""
    path = tmp_path / "tokens.db"
    asyncio.run(_record(path))
    capsys.readouterr()
    for extra in ([], ["--json"], ["--needs-action"]):
        assert (
            main(["connections", "list", "--provider", "finpai", *extra, "--store", str(path)]) == 1
        )
        out, err = capsys.readouterr()
        assert out == ""
        assert "finpai" in err
        assert "everifin, finapi" in err
