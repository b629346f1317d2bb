"""Finding 14 with several processes: after a store rolled back, the processes that hold the
newer set must get it back into the store before a process that no longer holds it renews from
the older one (seeds 2157, 2475 and 2727 of the grown simulation). Schedules run on virtual
time (:mod:`tests.session.virtual`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiofinaccess import Limits, ReauthorizationRequired
from aiofinaccess.core.tokens import TokenKey, TokenSet
from aiofinaccess.stores import Versioned
from tests.session.virtual import Keycloak, LeasedStore, manager, run


class FeedStore(LeasedStore):
    """A shared store with a change feed (as Redis's): every write and every key a rollback
    touched is announced to every process following it."""

    def __init__(self) -> None:
        super().__init__()
        self.feeds: list[asyncio.Queue[tuple[TokenKey, int | None]]] = []

    def announce(self, key: TokenKey, version: int | None) -> None:
        for feed in self.feeds:
            feed.put_nowait((key, version))

    async def put(
        self,
        key: TokenKey,
        token_set: TokenSet,
        *,
        expected_version: int | None,
        due_at: float | None = None,
    ) -> int:
        version = await super().put(key, token_set, expected_version=expected_version)
        self.announce(key, version)
        return version

    def roll_back(self, backup: dict[TokenKey, Versioned]) -> None:
        """Lose every acknowledged write since ``backup`` (a failover, a restored backup)."""
        self._data = dict(backup)
        for key, versioned in backup.items():
            self.announce(key, versioned.version)

    async def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        feed: asyncio.Queue[tuple[TokenKey, int | None]] = asyncio.Queue()
        self.feeds.append(feed)
        while True:
            yield await feed.get()


def test_a_holder_writes_the_newer_set_back_when_the_feed_shows_a_rollback() -> None:
    """Seeds 2157, 2475, 2727: the store rolled back to an older set of alice's session; a
    process holding the newer set saw the change but only wrote its set back at its own next
    renewal; a process with a small working set had dropped the newer set meanwhile, read the
    older one and renewed with its spent refresh token: a replay, and the session died. A
    holder now writes its set back as soon as the change feed shows the older one."""

    async def main() -> tuple[str | None, list[str], str | None]:
        store, idp = FeedStore(), Keycloak()
        async with (
            manager(store, idp) as holder,
            manager(store, idp, limits=Limits(working_set=1)) as web,
        ):
            await holder.store_token_set("idp", "alice", idp.login("alice"))
            backup = dict(store._data)  # what the replica holds: alice's first set
            await holder.refresh("idp", "alice")  # rt-alice-1 spent: rt-alice-2 is live
            assert await web.access_token("idp", "alice") == "at-alice-2"
            store.roll_back(backup)  # a failover: rt-alice-1 is stored again
            await asyncio.sleep(1.0)  # every process has followed the feed
            await web.store_token_set("idp", "bob", idp.login("bob"))  # alice leaves web
            try:
                renewed: str | None = (await web.refresh("idp", "alice")).access_token.reveal()
            except ReauthorizationRequired as exc:
                renewed = exc.reason
            stored = await store.get(web.key("idp", "alice"))
        return renewed, idp.replays, stored and stored.token_set.access_token.reveal()

    renewed, replays, stored = run(main)
    assert replays == []
    assert renewed == "at-alice-4"  # bob's login was the third set issued
    assert stored == "at-alice-4"
