"""A renewal whose lease lapsed in a pause before its send decides on what the store holds
now, not on its copy from before the pause (issue 22: found by the simulation, seed 1525).

The paused process read alice's set before the pause; her refresh token runs out during it,
and meanwhile the app logged her in again from another process. After the pause the lapse
drops the lease ("take it again and read the store again"), but the next step is judged on
the old copy: its refresh token ran out, so the renewal reports ReauthorizationRequired while
the store holds her new login. Virtual time."""

from __future__ import annotations

import asyncio

import attrs

from aiofinaccess import ReauthorizationRequired, Timeouts
from tests.session.virtual import Keycloak, LeasedStore, manager, now, run


def test_a_lapsed_renewal_reads_the_store_before_giving_the_grant_up() -> None:
    async def main() -> str:
        store, idp = LeasedStore(), Keycloak()
        async with (
            manager(store, idp, timeouts=Timeouts(token=1.0, lease=4.0)) as paused,
            manager(store, idp, timeouts=Timeouts(token=1.0, lease=4.0)) as other,
        ):
            first = idp.login("alice")
            short = attrs.evolve(first, refresh_expires_at=idp.clock.wall() + 5.0)
            await paused.store_token_set("idp", "alice", short)

            async def pause_once() -> None:  # the process stalls 10 s just before its send
                idp.before_send = None
                store.frozen_until = now() + 10.0
                await asyncio.sleep(10.0)

            idp.before_send = pause_once
            renewal = asyncio.ensure_future(paused.refresh("idp", "alice"))
            await asyncio.sleep(0.5)
            await other.store_token_set("idp", "alice", idp.login("alice"))  # a new login
            try:
                async with asyncio.timeout(60.0):  # virtual seconds
                    await renewal
            except ReauthorizationRequired as exc:
                return f"ReauthorizationRequired({exc.reason})"
            return "renewed"

    assert run(main) == "renewed"
