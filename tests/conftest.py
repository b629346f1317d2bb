"""Fixtures shared by the suite."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from aioresponses import aioresponses

from aiofinaccess import Schedule, SessionManager
from aiofinaccess.stores.memory import MemoryStore
from tests.support import aioresponses_shim
from tests.support.fakes import FakeClock, RecordingHandler
from tests.support.tokens import EVERIFIN, EVERIFIN_CLIENT, FINAPI, FINAPI_CLIENT

aioresponses_shim.install()

# Tokens the sandbox and the test servers issue (recognisable by their prefixes), and the
# fixed secrets the suite configures. None may ever reach a log record.
_ISSUED_TOKEN = re.compile(
    r"\b(?:finapi_at|finapi_rt|kc_at|kc_rt|kc_idt|code)_[A-Za-z0-9_-]{32}"
    r"|\b(?:at|rt|idt|code)-[A-Za-z0-9_-]{32}"
)
_FIXED_SECRETS = (
    "finapi-sandbox-secret",
    "everifin-sandbox-secret",
    "finapi-client-secret-123",
    "everifin-client-secret-456",
    "sdk-client-secret-0123456789",
    "alice-password",
    "bob-password",
)
# A test server's access log prints request lines (a finAPI v1 revocation carries its token in
# the query); that is the server's log, not the SDK's.
_NOT_OURS = ("aiohttp.access",)


@pytest.fixture(autouse=True)
def no_secret_in_any_log_record() -> Iterator[None]:
    """Suite-wide: every test runs with DEBUG logging and leaks no secret into a record."""
    handler = RecordingHandler()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    leaks = [
        text[:120]
        for name, text in zip(handler.names, handler.texts, strict=True)
        if not name.startswith(_NOT_OURS)
        and (_ISSUED_TOKEN.search(text) or any(secret in text for secret in _FIXED_SECRETS))
    ]
    assert leaks == [], f"secrets in log records: {leaks}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as mock:
        yield mock


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def manager(clock: FakeClock, store: MemoryStore) -> AsyncIterator[SessionManager]:
    async with SessionManager(
        store=store, clock=clock, schedule=Schedule(enabled=False)
    ) as manager:
        manager.register(FINAPI, FINAPI_CLIENT)
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        yield manager
