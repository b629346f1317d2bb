"""A stored record that does not decode is skipped, logged by key hash and counted, never the
end of every restore or listing (issue 22, finding 8).

Each durable store's test class mixes this in and says how to spoil a record in place
(``corrupt``); the memory store keeps objects, not bytes, so it has nothing to decode.
"""

from __future__ import annotations

import logging

import pytest

from aiofinaccess import SessionManager, TokenKey
from aiofinaccess.stores import TokenStore
from tests.stores.contract import ALICE, BOB, sample
from tests.support.tokens import EVERIFIN, EVERIFIN_CLIENT

CAROL = TokenKey("everifin", "carol")


class UnreadableContract:
    """Tests for stores whose records are bytes through a codec."""

    async def corrupt(self, store: TokenStore, key: TokenKey) -> None:
        """Overwrite ``key``'s stored bytes with garbage, its version left as it was."""
        raise NotImplementedError

    async def test_an_unreadable_record_is_skipped_counted_and_restore_goes_on(
        self, store: TokenStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        for key in (ALICE, BOB, CAROL):
            await store.put(key, sample(f"AT-{key.subject}"), expected_version=None)
        await self.corrupt(store, BOB)
        with caplog.at_level(logging.WARNING, logger="aiofinaccess"):
            found = await store.get_many([ALICE, BOB, CAROL])  # type: ignore[attr-defined]
            assert sorted(found, key=str) == [ALICE, CAROL]
            assert store.stats.unreadable_records == 1  # type: ignore[attr-defined]
            manager = SessionManager(store=store)
            manager.register(EVERIFIN, EVERIFIN_CLIENT)
            try:
                assert await manager.restore() == 2  # ALICE and CAROL; BOB skipped
            finally:
                await manager.aclose()
        assert store.stats.unreadable_records == 2  # type: ignore[attr-defined]
        assert BOB.hashed in caplog.text
        assert "bob" not in caplog.text  # by hash: a key names its end user
