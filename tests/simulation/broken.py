"""Deliberately broken builds: each puts back a bug the simulation must catch within the CI
budget (test_simulation.py). A mutation takes a freshly built process and breaks its manager."""

from __future__ import annotations

import math
from typing import Any

from aiofinaccess.core.errors import AiofinaccessError, ApiError, TransportError
from aiofinaccess.core.lifecycle import Renewal, plan
from aiofinaccess.core.renewal_step import Stored
from aiofinaccess.core.tokens import Anchor, TokenKey
from aiofinaccess.session.duty import DutyLoop
from aiofinaccess.session.fence import Fence
from aiofinaccess.session.idle import IdleGate
from aiofinaccess.stores import Replication, Versioned
from tests.simulation.process import Process
from tests.simulation.store import DutyStoreClient, StoreClient


def no_fence(process: Process) -> None:
    """Take the lease, but never check or extend it before sending, and no heartbeat."""
    fence = process.manager._driver._fence
    fence.lease_needed = 0.0

    async def no_heartbeat(_self: Fence, _lease: object) -> None:
        return None

    fence._heartbeat = no_heartbeat.__get__(fence)  # type: ignore[method-assign]


def unanchored(process: Process) -> None:
    """Plan a stored set as if it was issued the moment it is read (issue 11, bug 2)."""
    access = process.manager._access

    def as_if_new(found: Versioned, _asked: float | None = None) -> Stored:
        token_set = found.token_set
        token_set = token_set.with_anchor(Anchor(token_set.issued_at, process.clock.monotonic()))
        return Stored(token_set, found.version, plan(token_set, access._policy))

    access.anchored = as_if_new  # type: ignore[method-assign]


def drop_unwritten(process: Process) -> None:
    """Give up on a redeemed set after the quick write attempts (issue 11, bug 4a)."""
    writes = process.manager._driver._writes
    writes.pending_until = lambda _token_set: -math.inf  # type: ignore[method-assign]


def no_due_times(process: Process) -> None:
    """On a store that keeps the refresh duty, write sets without their due time."""
    access = process.manager._access
    if access._duty is not None:
        access.due_for = lambda _token_set: None  # type: ignore[method-assign]


def _duty_loops(process: Process) -> list[DutyLoop]:
    return [part for part in process.manager._lifetime._background if isinstance(part, DutyLoop)]


def failure_leaves_the_duty(process: Process) -> None:
    """The duty drops a claimed set from the store's schedule when its renewal fails once
    (instead of leaving it to fall due again at its claim deadline)."""
    for part in _duty_loops(process):

        async def renew_or_drop(
            key: TokenKey, *args: Any, loop: DutyLoop = part, claimed: Any = part._renew_claimed
        ) -> None:
            try:
                await claimed(key, *args)
            except AiofinaccessError:
                await loop._reschedule(key, None)
                raise

        part._renew_claimed = renew_or_drop  # type: ignore[method-assign]


def lost_answer_ends_the_session(process: Process) -> None:
    """A refresh whose answer was lost gives the session up as dead, instead of leaving the
    replay to the driver's retry or the next renewal (which Keycloak's max reuse 1 accepts)."""
    redeemer = process.manager._driver._redeemer
    original = redeemer._after_failed_send

    async def give_up(
        entry: Any, registration: Any, run: Any, grant: Renewal, error: ApiError | TransportError
    ) -> None:
        sent = isinstance(error, TransportError) and error.request_sent
        if grant is Renewal.REFRESH_TOKEN and sent:
            run.dead_grant, run.dead_cause = "its answer was lost", None
            return
        await original(entry, registration, run, grant, error)

    redeemer._after_failed_send = give_up  # type: ignore[method-assign]


# -- the bugs of the later worlds (issue 22) ----------------------------------------------------


def one_client_for_all(process: Process) -> None:
    """Every set is renewed with the client of the first provider registered (I8)."""
    first = next(iter(process.clients.values()))
    process.manager._driver._redeemer.endpoint = lambda _name: first


class _KeepEverything:
    """A store whose deletes do nothing (everything else passes through)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        return True


def forget_only_here(process: Process) -> None:
    """``forget``, ``revoke`` and ``logout`` drop the set in this process but leave it in the
    store, where the others go on renewing it (I9)."""
    grants = process.manager._grants
    grants._store = _KeepEverything(grants._store)  # type: ignore[assignment]


def dead_sets_stay(process: Process) -> None:
    """A renewal that meets a dead grant reports it but leaves the dead set in the store (and on
    the duty) (I10)."""
    driver = process.manager._driver
    poison = driver._poison

    async def report_only(entry: Any, run: Any, reason: str) -> None:
        run.stored = None  # nothing to delete
        await poison(entry, run, reason)

    driver._poison = report_only  # type: ignore[method-assign]


def claims_on_a_fast_clock(process: Process) -> None:
    """The store claims on the claimant's wall clock, three seconds fast: it hands out sets
    whose claims by other workers have not run out (issue 22, finding 15; I11)."""
    store = process.manager._store
    if isinstance(store, DutyStoreClient):
        store.claim_clock = lambda: process.clock.wall() + 3.0


def no_password_fallback(process: Process) -> None:
    """The app's password lookup is ignored: a finAPI user whose refresh token is gone must
    log in again (I3)."""
    manager = process.manager
    register = manager.register

    def without_lookup(provider: Any, client: Any, *, password_lookup: Any = None) -> Any:
        return register(provider, client)

    manager.register = without_lookup  # type: ignore[method-assign]


def no_check_before_send(process: Process) -> None:
    """The fence's last check where the request leaves is a no-op: a process paused after its
    fence sends a refresh token another process may have redeemed meanwhile (issue 22,
    finding 16; I1)."""
    fence = process.manager._driver._fence
    fence.send_check = lambda _run: lambda: None  # type: ignore[method-assign]


def no_client_check(process: Process) -> None:
    """A user set issued to another client (a second app under the same provider name) is used
    and renewed with this process's client (issue 22, finding 2, users; I8)."""
    registry = process.manager._registry
    registry.mismatch = lambda _key, _token_set: None  # type: ignore[method-assign]


# -- idle sets and the durability option (issue 27) ---------------------------------------------


def _idle_gates(process: Process) -> list[IdleGate]:
    return [part._idle for part in _duty_loops(process) if part._idle is not None]


def idle_gate_ignores_stamps(process: Process) -> None:
    """The duty renews every set it claims, however long nobody used it (I15)."""
    for gate in _idle_gates(process):

        async def renew_all(keys: list[TokenKey]) -> list[TokenKey]:
            return keys

        gate.sift = renew_all  # type: ignore[method-assign]


def idle_gate_drops_kept_alive(process: Process) -> None:
    """The duty leaves idle sets alone even where the app asked to keep them alive (I16)."""
    for gate in _idle_gates(process):
        gate._keep_alive = False


class _AcksAtOnce:
    """The durability option, but a write counts as stored whatever the replica says."""

    def __init__(self, replication: Replication) -> None:
        self.timeout, self.fsync, self.replicas = (
            replication.timeout,
            replication.fsync,
            replication.replicas,
        )

    def confirmed(self, _reply: object) -> bool:
        return True


def replication_acks_early(process: Process) -> None:
    """A replicated store acknowledges a write before its replica has it (I17)."""
    store = process.manager._store
    if isinstance(store, StoreClient) and store.writes.replication is not None:
        store.writes.replication = _AcksAtOnce(store.writes.replication)  # type: ignore[assignment]
