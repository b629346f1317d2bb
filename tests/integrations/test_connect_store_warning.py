"""A connect flow on the in-process default store says so at start-up (issue 24, item 2):
under ``uvicorn --workers 2`` a callback that reaches the other worker found no pending login
("callback state is unknown or expired") and nothing had warned."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aiofinaccess import ClientCredentials, Everifin, SessionManager, SQLiteStore
from aiofinaccess.integrations.web import ConnectFlow


async def test_a_connect_flow_on_memory_store_warns_once_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with SessionManager() as manager:
        manager.register(Everifin.stage(), ClientCredentials("id", "secret"))
        with caplog.at_level(logging.WARNING, logger="aiofinaccess"):
            ConnectFlow(manager, "everifin")
    warnings = [r.getMessage() for r in caplog.records if "MemoryStore" in r.getMessage()]
    assert len(warnings) == 1
    assert "one process" in warnings[0]
    assert "SQLiteStore" in warnings[0]


async def test_a_connect_flow_on_a_shared_store_says_nothing(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    async with SessionManager(store=SQLiteStore(tmp_path / "tokens.db")) as manager:
        manager.register(Everifin.stage(), ClientCredentials("id", "secret"))
        with caplog.at_level(logging.WARNING, logger="aiofinaccess"):
            ConnectFlow(manager, "everifin")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
