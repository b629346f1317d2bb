"""Review of the last check before a send (core/fencing.py): a process that is paused longer
than the lease's margin before *every* send (a blocking log handler between the fence and the
request, a loop stalled by CPU-bound work, a VM steal) is refused every time. Each refusal
drops the lease, takes it again and fences again, with no count: the renewal neither sends
nor fails, and its caller waits for ever (here: until its own timeout). Virtual time."""

from __future__ import annotations

import asyncio

from aiofinaccess import Timeouts
from aiofinaccess.core.errors import AiofinaccessError
from tests.session.virtual import Keycloak, LeasedStore, manager, now, run


def test_a_sender_paused_before_every_send_gets_an_error_not_an_endless_loop() -> None:
    async def main() -> tuple[str, int, int, list[str]]:
        store, idp = LeasedStore(), Keycloak()
        pauses = 0

        async def pause_always() -> None:  # the whole process stalls 4.5 s before each send
            nonlocal pauses
            pauses += 1
            store.frozen_until = now() + 4.5
            await asyncio.sleep(4.5)

        async with manager(store, idp, timeouts=Timeouts(token=1.0, lease=4.0)) as m:
            await m.store_token_set("idp", "alice", idp.login("alice"))
            idp.before_send = pause_always
            try:
                async with asyncio.timeout(600.0):  # virtual seconds: 130 attempts' worth
                    await m.refresh("idp", "alice")
                outcome = "renewed"
            except TimeoutError:
                outcome = "still renewing after 600 s"
            except AiofinaccessError as exc:
                outcome = type(exc).__name__
            idp.before_send = None
        return outcome, pauses, len(idp.presented), idp.replays

    outcome, pauses, presented, replays = run(main)
    assert replays == []  # the check does its job: nothing replayed
    # A typed error after a few refused attempts, as ready_to_send gives after 3 slow fences.
    assert outcome != "still renewing after 600 s", (outcome, pauses, presented)
    assert pauses <= 10, pauses


def test_a_request_the_last_check_stopped_is_not_counted_as_sent() -> None:
    """``stats.token_requests`` and ``stats.renewals`` count a request the last check stopped
    (they are counted before it): a dashboard shows token requests the provider never saw."""

    async def main() -> tuple[int, int, int]:
        store, idp = LeasedStore(), Keycloak()
        async with (
            manager(store, idp, timeouts=Timeouts(token=1.0, lease=4.0)) as paused,
            manager(store, idp, timeouts=Timeouts(token=1.0, lease=4.0)) as other,
        ):
            await paused.store_token_set("idp", "alice", idp.login("alice"))

            async def pause_once() -> None:
                idp.before_send = None
                store.frozen_until = now() + 10.0
                await asyncio.sleep(10.0)

            idp.before_send = pause_once
            first = asyncio.ensure_future(paused.refresh("idp", "alice"))
            await asyncio.sleep(0.5)
            await other.refresh("idp", "alice")
            await first
            counted = paused.stats.token_requests + other.stats.token_requests
            return counted, len(idp.presented), paused.stats.renewals

    counted, presented, paused_renewals = run(main)
    assert presented == 1  # the other process's request only: the paused one adopted its set
    assert (counted, paused_renewals) == (1, 0)
