"""MemoryStore against the store contract."""

from __future__ import annotations

import pytest

from aiofinaccess.stores.memory import MemoryStore
from tests.stores.contract import ConnectionsContract, DutyContract, StoreContract


class TestMemoryStore(StoreContract, ConnectionsContract, DutyContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()
