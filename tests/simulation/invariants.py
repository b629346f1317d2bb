"""The checks of the invariants that are not made where their fault happens (the IdP checks I1
and I8, the app's calls I2-I4): the store's duty (I6, I10, I11), rollbacks and forgets (I9),
and the cost of dead sessions (I12). See world.py for the list."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiofinaccess.core.tokens import TokenKey

if TYPE_CHECKING:
    from tests.simulation.idp import Session
    from tests.simulation.world import World


def stored_session(world: World, key: TokenKey) -> tuple[Session | None, str | None]:
    """The IdP session of the set stored under ``key``, and its refresh token."""
    store = world.store
    record = store.records.get(key)
    if record is None:
        return None, None
    token_set = store.codec.decode(record[1], kind="token_set", key=str(key))
    if token_set.refresh_token is None:
        return None, None
    refresh = token_set.refresh_token.reveal()
    return world.idp.by_refresh.get(refresh), refresh


def check_duty(world: World) -> None:
    """I6: on a store that keeps the refresh duty, every stored set whose refresh token is still
    live at the IdP has a due time: no write or claim dropped it from the duty."""
    if world.config.duty == "off":
        return
    store = world.store
    for key in store.records:
        session, refresh = stored_session(world, key)
        if session is None or not session.alive or session.current != refresh:
            continue
        if key not in store.due and not world.traffic.may_be_off_duty(key):
            world.violation(f"I6: {key.subject or key.provider} is stored but off the duty")


def _stuck(world: World) -> list[tuple[TokenKey, str, float]]:
    """Due entries of sets that are gone or whose grant is dead: key, why, due time."""
    world.idp.expire_idle()
    stuck = []
    for key, at in world.store.due.items():
        if key.provider not in world.serving_providers():
            continue  # nobody serves it: nobody can tell (its claim runs out, and again)
        if (
            key.subject is not None
            and world.features.second_app is not None
            and (key.provider == "idp")
        ):
            # Two clients under the same provider name on one store (docs/guides/deployment.md
            # advises keys of their own; docs/guides/refresh-duty.md says what claims do): each
            # client's workers give the other's sets back, but claims are not scoped by
            # client, so the wrong ones may win the claim race again and again. Safe
            # (never renewed with the wrong credentials, I8) but not yet timely: open.
            continue
        if key not in world.store.records:
            stuck.append((key, "its record is gone", at))
            continue
        session, _ = stored_session(world, key)
        if session is not None and session.rotating and not session.alive:
            stuck.append((key, "its grant is dead", at))
    return stuck


async def check_dead_leave(world: World) -> None:
    """I10: once its due time came round (and its claim, if any, ran out), the duty holds no
    due time of a set that is gone (an orphan) or whose grant is dead. A set may die while
    waiting for its due time: a few rounds."""
    if world.config.duty == "off":
        return
    config = world.config
    # a claim is noticed within a poll, a gather and a token exchange
    noticed = config.duty_poll + 1.5 * config.duty_gather + config.token_timeout + 2.0
    for _ in range(4):
        stuck = _stuck(world)
        if not stuck:
            return
        await asyncio.sleep(max(0.0, max(at for _, _, at in stuck) - world.wall()) + noticed)
    for key, why, _ in _stuck(world):
        world.violation(f"I10: {key} stays on the duty, {why}")


def check_claim(world: World, key: TokenKey, owner: str, claim_for: float) -> None:
    """I11: a set is claimed again only after its claim ran out on the store's clock (less the
    stated skew of the processes' clocks and a store call's latency) or after its due time
    was written since."""
    store = world.store
    now = store.now()
    last = store.claimed_at.get(key)
    store.claimed_at[key] = (now, claim_for)
    if last is None or store.due_written_at.get(key, -1.0) >= last[0]:
        return
    at, length = last
    early = at + length - now
    if early > 2 * world.config.skew + 0.05:  # a store call's two ways at most
        world.violation(
            f"I11: {key} claimed by {owner} {early:.2f} s before its last claim ran out"
        )


def check_reauth_cost(world: World) -> None:
    """I12: a process reports a set's ``GrantLost`` at most once per session lost (and
    once more per forget), not once per call."""
    for process in world.processes:
        for (provider, subject), count in process.reauth_events.items():
            if subject is None:
                continue
            lost = sum(1 for s in world.idp.sessions if s.account == (provider, subject))
            bound = 2 * lost + world.forgets.get((provider, subject), 0) + 1
            if count > bound:
                world.violation(
                    f"I12: pid {process.pid} reported {provider}/{subject} GrantLost "
                    f"{count} times ({lost} sessions)"
                )
