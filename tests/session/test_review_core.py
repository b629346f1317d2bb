"""The token core's findings of issue 22, each pinned by a test that failed before its fix (or
refuted by one that passes for the stated reason). Schedules run on virtual time
(:mod:`tests.session.virtual`): every instant asserted here is exact, not measured."""

from __future__ import annotations

import asyncio

import pytest

from aiofinaccess import ReauthorizationRequired
from aiofinaccess.core.errors import LeaseBusyError
from aiofinaccess.core.tokens import TokenKey
from aiofinaccess.stores import Versioned
from tests.session.virtual import Keycloak, LeasedStore, manager, now, run


def test_waiting_for_a_busy_lease_keeps_its_bound() -> None:
    """Finding 17: the wait for another process's lease is bounded by
    ``token_timeout + 2 * lease_ttl`` (5 s here); the deadline was checked only after an
    attempt that itself waited up to ``lease_ttl``, so the error came at 6 s."""

    async def main() -> float:
        store, idp = LeasedStore(), Keycloak()
        async with manager(store, idp, token_timeout=1.0, lease_ttl=2.0) as m:
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
        async with manager(store, idp, max_concurrent_refreshes=1) as m:
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
    assert renewed == ["at-bob-3", "at-alice-4"]
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
