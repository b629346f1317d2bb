"""The token core's findings of issue 22, each pinned by a test that failed before its fix (or
refuted by one that passes for the stated reason). Schedules run on virtual time
(:mod:`tests.session.virtual`): every instant asserted here is exact, not measured."""

from __future__ import annotations

import pytest

from aiofinaccess.core.errors import LeaseBusyError
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
