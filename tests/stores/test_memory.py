"""MemoryStore against the store contract."""

from __future__ import annotations

import pytest

from aiofinaccess.stores.memory import MemoryStore
from tests.stores.contract import DutyContract, StoreContract


class TestMemoryStore(StoreContract, DutyContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()
