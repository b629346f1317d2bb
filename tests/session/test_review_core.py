"""The token core's findings of issue 22, each pinned by a test that failed before its fix (or
refuted by one that passes for the stated reason). Schedules run on virtual time
(:mod:`tests.session.virtual`): every instant asserted here is exact, not measured."""

from __future__ import annotations

import asyncio

import pytest

from aiofinaccess import Limits, ReauthorizationRequired, Timeouts
from aiofinaccess.core.errors import LeaseBusyError
from aiofinaccess.core.renewal_step import begun, descended, superseded
from aiofinaccess.core.tokens import TokenKey, TokenSet
from aiofinaccess.stores import Versioned
from aiofinaccess.stores.codec import JsonCodec
from tests.session.virtual import Keycloak, LeasedStore, manager, now, run


def test_waiting_for_a_busy_lease_keeps_its_bound() -> None:
    """Finding 17: the wait for another process's lease is bounded by
    ``token_timeout + 2 * lease_ttl`` (5 s here); the deadline was checked only after an
    attempt that itself waited up to ``lease_ttl``, so the error came at 6 s."""

    async def main() -> float:
        store, idp = LeasedStore(), Keycloak()
        async with manager(store, idp, timeouts=Timeouts(token=1.0, lease=2.0)) as m:
            await m.store_token_set("idp", "alice", idp.login("alice"))
            key = m.key("idp", "alice")
            store.leases[key] = (0, float("inf"))  # another process holds it and hangs
            started = now()
            with pytest.raises(LeaseBusyError):
                await m.refresh("idp", "alice")
            return now() - started

    assert run(main) <= 5.0


class StrayCancel(LeasedStore):
    """A store whose next read raises ``CancelledError`` though nobody cancelled the caller
    (as redis-py's ``wait_for`` can on CPython 3.11)."""

    armed = False

    async def get(self, key: TokenKey) -> Versioned | None:
        if self.armed:
            self.armed = False
            raise asyncio.CancelledError
        return await super().get(key)


def test_a_stray_cancellation_out_of_a_store_call_leaves_the_key_usable() -> None:
    """Finding 18a, proven: the job took the stray ``CancelledError`` for its own
    cancellation, the caller got ``CancelledError``, and the entry stayed ``REFRESHING`` with
    no job, so every later call raised ``InvalidTransition``. It is now a failed store call."""

    async def main() -> list[str]:
        store, idp = StrayCancel(), Keycloak()
        seen = []
        async with manager(store, idp) as m:
            await m.store_token_set("idp", "alice", idp.login("alice"))
            store.armed = True
            for _ in range(2):
                try:
                    seen.append((await m.refresh("idp", "alice")).access_token.reveal())
                except (Exception, asyncio.CancelledError) as exc:
                    seen.append(type(exc).__name__)
        return seen

    assert run(main) == ["StoreError", "at-alice-2"]


def test_a_renewal_waiting_for_an_endpoint_slot_blocks_its_key_for_one_lease_at_most() -> None:
    """Finding 18d, proven: the lease was extended for the send (``token_timeout +
    lease_ttl``, 40 s) before the endpoint slot was free, so a crash while waiting for the
    slot blocked the key 40 s, not the documented ``lease_ttl`` (10 s). The extension for the
    send now comes once the slot is held."""

    async def main() -> tuple[float, list[str]]:
        store, idp = LeasedStore(), Keycloak()
        gate = asyncio.Event()
        async with manager(store, idp, limits=Limits(concurrent_refreshes=1)) as m:
            for user in ("alice", "bob"):
                await m.store_token_set("idp", user, idp.login(user))
            idp.before_send = gate.wait
            bob = asyncio.ensure_future(m.refresh("idp", "bob"))
            await asyncio.sleep(1.0)  # bob's request holds the endpoint's only slot
            idp.before_send = None
            alice = asyncio.ensure_future(m.refresh("idp", "alice"))
            blocked = 0.0
            for _ in range(30):  # alice waits for the slot, her lease kept by its heartbeat
                await asyncio.sleep(1.0)
                blocked = max(blocked, store.lease_left(m.key("idp", "alice")))
            gate.set()
            renewed = [(await call).access_token.reveal() for call in (bob, alice)]
        return blocked, renewed

    blocked, renewed = run(main)
    # Both renewed (bob's request, stuck 30 s before it went out, is sent again: finding 16).
    assert [token.split("-")[1] for token in renewed] == ["bob", "alice"]
    assert round(blocked, 6) <= 10.0  # virtual instants: exact up to float rounding


def test_after_a_store_rollback_the_newer_set_is_written_back_not_replaced() -> None:
    """Finding 14: the store went back to an older set of the same session (a failover, a
    restored backup); the process holding the newer set adopted the older one and renewed
    with its spent refresh token, and the provider killed the session. The newer set is now
    written back over the older one (compare-and-set on the stored version)."""

    async def main() -> tuple[list[str], list[str], str | None]:
        store, idp = LeasedStore(), Keycloak()
        renewed = []
        async with manager(store, idp) as m:
            await m.store_token_set("idp", "alice", idp.login("alice"))
            backup = dict(store._data)
            renewed.append((await m.refresh("idp", "alice")).access_token.reveal())
            store._data = backup  # the store is rolled back: rt-alice-1 again
            for _ in range(2):
                try:
                    renewed.append((await m.refresh("idp", "alice")).access_token.reveal())
                except ReauthorizationRequired as exc:
                    renewed.append(exc.reason)
            stored = await store.get(m.key("idp", "alice"))
        return renewed, idp.replays, stored and stored.token_set.access_token.reveal()

    renewed, replays, stored = run(main)
    assert replays == []
    assert renewed == ["at-alice-2", "at-alice-3", "at-alice-4"]
    assert stored == "at-alice-4"


def test_a_new_login_is_adopted_never_written_over() -> None:
    """Finding 14's other side: only an older set of the *same* session is written over. A new
    login stored by another process starts a session of its own (even where the provider hands
    out the same refresh token again) and is adopted."""

    async def main() -> tuple[str, str | None]:
        store, idp = LeasedStore(), Keycloak()
        async with manager(store, idp) as web, manager(store, idp) as worker:
            await worker.store_token_set("idp", "alice", idp.login("alice"))
            renewed = await worker.refresh("idp", "alice")  # generation 1 of the first login
            assert renewed.refresh_token is not None
            wall = idp.clock.wall()
            login = TokenSet(
                "at-alice-new",
                issued_at=wall,
                expires_at=wall + 60,
                refresh_token=renewed.refresh_token,
            )
            await web.store_token_set("idp", "alice", login)
            adopted = await worker.renew_after_rejection("idp", "alice", "at-alice-2")
            stored = await store.get(worker.key("idp", "alice"))
        return adopted, stored and stored.token_set.access_token.reveal()

    assert run(main) == ("at-alice-new", "at-alice-new")


def test_superseded_compares_generations_of_one_lineage_only() -> None:
    """The pure decision: older means fewer renewals into the same session."""
    first = begun(TokenSet("at-1", refresh_token="rt-1"))
    second = descended(TokenSet("at-2", refresh_token="rt-2"), first)
    legacy = TokenSet("at-0", refresh_token="rt-0")  # stored before lineages were recorded
    after_legacy = descended(TokenSet("at-1", refresh_token="rt-1"), legacy)
    assert (second.lineage, second.generation) == (first.lineage, 1)
    assert superseded(first, second)
    assert not superseded(second, first)
    assert not superseded(second, second)
    assert not superseded(begun(TokenSet("at-9", refresh_token="rt-1")), second)
    assert superseded(legacy, after_legacy)
    assert not superseded(first, None)
    codec = JsonCodec()  # a durable store keeps both
    kept = codec.decode(codec.encode(second, kind="token_set", key="k"), kind="token_set", key="k")
    assert (kept.lineage, kept.generation) == (first.lineage, 1)


def test_a_set_redeemed_while_the_store_rolled_back_is_still_written() -> None:
    """Finding 14, during a renewal: the store went back to an older set while the answer was
    on its way, so the write met a version conflict. What the store holds is older than the
    redeemed set (which holds the only live refresh token): it is written over, not dropped."""

    async def main() -> tuple[str, list[str], str | None]:
        store, idp = LeasedStore(), Keycloak()
        async with manager(store, idp) as m:
            await m.store_token_set("idp", "alice", idp.login("alice"))
            backup = dict(store._data)
            await m.refresh("idp", "alice")

            async def roll_back() -> None:  # as the second refresh goes out
                store._data = backup

            idp.before_send = roll_back
            renewed = (await m.refresh("idp", "alice")).access_token.reveal()
            stored = await store.get(m.key("idp", "alice"))
        return renewed, idp.replays, stored and stored.token_set.access_token.reveal()

    assert run(main) == ("at-alice-3", [], "at-alice-3")


def test_a_pause_between_the_fence_and_the_send_never_replays_a_refresh_token() -> None:
    """Finding 16: a process paused (GC, SIGSTOP, a blocked loop) after its lease check and
    before its request went out, for longer than the lease left; another process took the
    lease and redeemed the token, and then the paused one sent it too: a replay, which ended
    the session. The last check where the request leaves now finds the lease lapsed and
    sends nothing; the paused process takes the lease again and adopts the other's set."""

    async def main() -> tuple[list[str], list[str]]:
        store, idp = LeasedStore(), Keycloak()
        async with (
            manager(store, idp, timeouts=Timeouts(token=1.0, lease=4.0)) as paused,
            manager(store, idp, timeouts=Timeouts(token=1.0, lease=4.0)) as other,
        ):
            await paused.store_token_set("idp", "alice", idp.login("alice"))

            async def pause_once() -> None:  # the process stops, its heartbeat with it
                idp.before_send = None
                store.frozen_until = now() + 10.0
                await asyncio.sleep(10.0)

            idp.before_send = pause_once
            first = asyncio.ensure_future(paused.refresh("idp", "alice"))
            await asyncio.sleep(0.5)
            second = asyncio.ensure_future(other.refresh("idp", "alice"))
            renewed = []
            for call in (first, second):
                try:
                    renewed.append((await call).access_token.reveal())
                except ReauthorizationRequired as exc:
                    renewed.append(exc.reason)
        return renewed, idp.replays

    renewed, replays = run(main)
    assert replays == []
    assert renewed == ["at-alice-2", "at-alice-2"]
