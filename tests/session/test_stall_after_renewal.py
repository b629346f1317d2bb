"""A caller whose process stalls between a renewal's answer and its own resumption never gets
the token that expired meanwhile (looked for when the fleet benchmark under a load of 7 handed
out expired tokens: those were its own seeding's fault, but this gap was real too).

``access_token()`` waits on the renewal job's outcome; the job judged the set usable when it
resolved it, but the caller runs only later, after every callback queued before it. The set
is judged again in the caller's own step, just before it is returned: a set no longer usable
is renewed again. Virtual time: the stall is a jump of the loop's clock in a callback of the
outcome, which runs before the waiting caller does."""

from __future__ import annotations

import asyncio
from typing import Any

from aiofinaccess import TransportError
from tests.session.virtual import Keycloak, LeasedStore, manager, run


def _stall_after(made: Any, seconds: float, times: int) -> list[int]:
    """Make each of the first ``times`` renewal outcomes stall the loop by ``seconds`` as it
    resolves (before any waiter resumes). Answers the count of stalls so far."""
    driver, stalls = made._driver, [0]
    start = driver.start

    def stalling(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        outcome = start(*args, **kwargs)

        def stall(_done: asyncio.Future[Any]) -> None:
            if stalls[0] < times:
                stalls[0] += 1
                asyncio.get_running_loop()._virtual_now[0] += seconds  # type: ignore[attr-defined]

        if not outcome.done():
            outcome.add_done_callback(stall)
        return outcome

    driver.start = stalling
    return stalls


def test_a_token_that_expired_while_its_caller_stalled_is_renewed_again() -> None:
    async def main() -> tuple[bool, int, int, list[str]]:
        store, idp = LeasedStore(), Keycloak(lifetime=60.0)
        async with manager(store, idp) as app:
            await app.store_token_set("idp", "alice", idp.login("alice"))
            await asyncio.sleep(59.5)  # past its renewal time: the next call renews first
            stalls = _stall_after(app, 61.0, times=1)
            token_set = await app.token_set("idp", "alice")
            usable = token_set.expires_at - idp.clock.wall() > 1.0  # the expiry margin
            return usable, stalls[0], idp.issued, idp.replays

    usable, stalls, issued, replays = run(main)
    assert stalls == 1
    assert usable, "handed out a token that expired while its caller stalled"
    assert issued == 3  # the login, the renewal the stall spoiled, one more
    assert replays == []


def test_a_caller_that_stalls_past_every_renewal_gets_an_error_not_an_expired_token() -> None:
    async def main() -> str:
        store, idp = LeasedStore(), Keycloak(lifetime=60.0)
        async with manager(store, idp) as app:
            await app.store_token_set("idp", "alice", idp.login("alice"))
            await asyncio.sleep(59.5)
            _stall_after(app, 61.0, times=100)
            try:
                await app.access_token("idp", "alice")
            except TransportError as exc:
                return f"TransportError(retryable={exc.retryable})"
            return "handed out"

    assert run(main) == "TransportError(retryable=True)"
