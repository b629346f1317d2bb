"""The simulated world: processes running real SessionManagers on simulated parts, app callers,
crashes and restarts, and the invariants checked as it runs.

One seed decides everything: the configuration (processes, users, lifetimes, fault rates,
lease and timeout settings, the features of config.py), every latency, every fault, every
crash. The SDK runs unchanged except for the two doors a simulation needs: its clock (a
per-process clock on virtual time) and its token endpoint (the SDK's own OAuth client, sending
to the simulated IdP).

Invariants, each checked where it can break:

* **I1** no refresh token is presented again after it was rotated, unless that rotation's
  answer never reached a live process or the process that got it crashed before the store
  held its successor (checked by the IdP at every request);
* **I2** no caller is handed an access token the resource server would refuse (expired or
  revoked) at hand-out, unless its session was lost for an excused reason (checked at every
  hand-out);
* **I3** no session is lost except by an excused reason: a crash inside the send-to-persist
  window, or an answer lost after the server committed; where the IdP allows one reuse of
  the token used last (``idp_max_reuse``, three worlds in ten), only a replay beyond that
  allowance excuses it (checked at every ``ReauthorizationRequired`` and in the final check,
  where every user's current session must serve a valid token from every process that
  serves its provider). A finAPI user (password grant) is never lost: the SDK falls back to
  the password when the refresh token is gone;
* **I4** every call without a deadline of its own returns within ``bound`` virtual seconds, and
  the loop never stalls (checked at every call and by the loop);
* **I5** no task ends with an exception nobody retrieved, and after every user is forgotten
  no process holds an entry or a task (checked by the loop's exception handler and at the
  end);
* **I6** on a store that keeps the refresh duty (a third of the worlds, some with processes
  that only serve from a small working set), every stored set whose refresh token is live has
  a due time once faults stop: no write, claim or reschedule dropped it (checked at the end);
* **I7** in the worlds that run a real store (SQLite inline, Redis's scripts on fakeredis: one
  in nine, see real_stores.py; no junk or rollbacks there), each key's recorded operations are
  linearizable as a compare-and-set register and no two lease holders overlap (checked at the
  end);
* **I8** a set is only ever renewed (revoked, logged out) with the credentials of the client
  it was issued to, whatever providers, clients and apps share the store and the duty
  (checked by the IdP at every request), and a client token is stored only under its own
  client's key (checked at every write that lands);
* **I9** a set the app forgot, revoked or logged out is never stored again (only a new login
  is), whoever was renewing it meanwhile (checked at every write that lands);
* **I10** dead sets leave the duty: once every due time came round, no due time is left of a
  set that is gone (an orphan) or whose grant is dead (a replay, a revocation, a session
  ended idle: ``features.refresh_ttl``) (checked at the end, for providers some process
  serves);
* **I11** a set is claimed again only after its last claim ran out on the store's clock (less
  twice the stated clock skew, ``skew``, and a store call's latency) or its due time was
  written since (checked at every claim);
* **I12** a process reports a user's ``GrantLost`` at most twice per session of that
  user and once per forget (checked at the end);
* **I13** ``aclose()`` returns within ``close_timeout + pending_write_timeout`` plus a
  store call and a token exchange (checked at every restart and at the end);
* **I14** a duty worker claims only sets of providers it registers (a claim it cannot use
  delays the set by a whole claim; checked at every claim);
* **I15** an idle set costs at most one renewal per stretch of idleness (and one per crash,
  boot or rollback meanwhile), and **I16** a set the app keeps alive stays on the duty while
  its session lives (idle worlds, ``features.idle_after``: idleness.py);
* **I17** with the durability option (``features.replication``), a failover loses no write
  the store acknowledged: it never gives back a refresh token whose successor it had
  acknowledged (durability.py).

Excuses and stated assumptions (the model's promises to the SDK):

* Store outages last less than half a lease and are two leases apart (see docs/promises.md,
  "Failures": a longer outage while a renewed set waits to be written can let another process
  replay its predecessor). Random store failures (up to 10 % of calls) come on top.
* A **rollback** of the store (``features.rollbacks``: its writes of the last 0.5-12 s lost,
  as in a failover or a restored backup) excuses the replay of a token it brought back (or
  of one it lost) unless the process presenting it holds a newer set of that session itself,
  or held one when it read the older one from the store (a process never trades the set it
  holds for the store's older one: it keeps or writes back its own). A process whose working
  set dropped the newer set before it read the older one cannot tell, as one that never held
  it (the SDK forgets what it drops). A set deleted by the rollback (a login since) is lost
  excusably, since the SDK must read a missing set as forgotten.
* A **forget, revocation or logout** by the app excuses losing that session (I2, I3).
* A **pause** (``features.pauses``) freezes every store call, sleep and send of a process
  (the send's freeze comes before the fence's last check, ``check_before_send``, where the
  request leaves): the SDK must notice a pause before it sends. What no client can close is
  outside the model: a pause between an answer and its write longer than the fence's margin
  (a quarter lease) excuses the replay of the token that answer spent.
  A pause inside an app's call longer than the expiry margin (1 s) excuses I2 for that call:
  no client sees a pause after its last check of a token's expiry.
* Real-store worlds: a SQLite file is one machine's, so its processes share one wall clock (no
  skew or steps there); every store module reads the world's clock, and a held lease counts
  on the clock the store's lease counts on.
* Where the IdP allows one reuse and sessions end idle, a lost answer whose spent token runs
  out before the SDK may replay it (its timeout and once more; after a crash, the lease)
  excuses losing that session (idp.py).
* A writer measures its age of a set where the write leaves (after any freeze): a pause after
  that reading is, like one after the fence's last check, outside the model.
* Clocks: wall clocks are off by up to ``skew`` (0.2 s) in the original worlds; in time
  worlds by up to ``features.clock_skew`` seconds more and stepped by up to a second at
  random (``features.clock_steps``); monotonic clocks do not step.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import sys
from collections.abc import Callable
from typing import Any

from aiofinaccess import (
    ReauthorizationRequired,
    StoreError,
    TransportError,
)
from aiofinaccess.core.tokens import Anchor, TokenKey, TokenSet
from tests.simulation import chaos, invariants
from tests.simulation.app import Account, App
from tests.simulation.config import (
    EPOCH,
    Config,
    Features,
)
from tests.simulation.idleness import Traffic
from tests.simulation.idp import Idp, Session
from tests.simulation.loop import Stalled, VirtualTimeLoop
from tests.simulation.process import CURRENT, Crashed, Process, SimClock
from tests.simulation.real_stores import shared_store
from tests.simulation.wire import undelivered

__all__ = ["CURRENT", "EPOCH", "Crashed", "Process", "SimClock", "World", "run_seed"]


class World(App):
    """One seeded run."""

    def __init__(
        self,
        seed: int,
        *,
        config: Config | None = None,
        features: Features | None = None,
        mutate: Callable[[Process], None] | None = None,
        verbose: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        drawn = Config.for_seed(seed, self.rng)  # drawn anyway: the seed's stream stays as it is
        self.config = config if config is not None else drawn
        self.features = features if features is not None else Features.draw(seed, self.config)
        self.loop = VirtualTimeLoop()
        self.loop.set_task_factory(self._task_factory)
        self.loop.set_exception_handler(self._exception)
        self.idp = Idp(
            self,
            random.Random(self.rng.getrandbits(64)),
            access_ttl=self.config.access_ttl,
            faults=self.config.idp_faults,
            max_reuse=self.config.idp_max_reuse,
            refresh_ttl=self.features.refresh_ttl,
        )
        self.store = shared_store(
            self,
            random.Random(self.rng.getrandbits(64)),
            faults=self.config.store_faults,
            impl=self.config.store_impl,
        )
        self.violations: list[str] = []
        self.verbose = verbose
        self._mutate = mutate
        self.processes: list[Process] = []
        self._pids = 0
        self._messages: set[asyncio.Task[Any]] = set()
        self._main: asyncio.Task[None] | None = None
        self.users = [f"user-{n}" for n in range(self.config.users)]
        self.accounts: list[Account] = self._accounts()
        self.traffic = Traffic(self)  # who the app stops using when (idle worlds)
        self.bound = 3 * self.config.token_timeout + 3 * self.config.lease_ttl + 10.0
        # close_timeout + pending_write_timeout, a store call and a token exchange (I13).
        self.aclose_bound = 3.0 + 30.0 + 5.0 + self.config.token_timeout + 1.0
        self.calls = 0
        self.slowest = 0.0
        self.failures: dict[str, int] = {}
        self._reconnecting: set[Account] = set()
        self.forgets: dict[Account, int] = {}
        self.settling = False
        self.forgotten: set[int] = set()  # the sessions the app forgot

    # -- plumbing -------------------------------------------------------------------------------

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        # The process of the task's own context (a message's or chaos's is an empty one, so
        # nobody's), not the creator's: a crash must not recall what its process sent.
        context = kwargs.get("context")
        owner = CURRENT.get() if context is None else context.get(CURRENT)
        if owner is not None:
            owner.tasks.append(task)
            if len(owner.tasks) > 256:
                owner.tasks = [t for t in owner.tasks if not t.done()]
        return task

    def _exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, Crashed | Stalled):
            return
        self.violation(f"I5: {context.get('message')}: {error!r}")

    def message(self, coro: Any, reply: asyncio.Future[Any] | None = None) -> None:
        """Something on the wire: it belongs to no process and survives its sender. If it
        raises (a harness bug), ``reply`` fails with the error and the seed fails."""
        task = self.loop.create_task(coro, context=contextvars.Context())
        self._messages.add(task)
        task.add_done_callback(lambda done: self._delivered(done, reply))

    def _delivered(self, task: asyncio.Task[Any], reply: asyncio.Future[Any] | None) -> None:
        self._messages.discard(task)
        error = undelivered(task, reply)
        if error is not None:
            self.violation(f"harness: a message raised {error!r}")
            # The world ends here: its app retries a failed call for as long as it runs, and a
            # harness error raised at every call would keep it running for ever.
            if self._main is not None:
                self._main.cancel()

    def wall(self) -> float:
        return EPOCH + self.loop.time()

    def _stamp(self, record: logging.LogRecord) -> bool:
        process = CURRENT.get()
        record.virtual = self.loop.time()
        record.msg = f"[pid {process.pid if process else '-'}] {record.msg}"
        return True

    def anchor(self, process: Process) -> Anchor:
        return Anchor(process.clock.wall(), process.clock.monotonic())

    def violation(self, text: str) -> None:
        self.violations.append(f"t={self.loop.time():.3f} {text}")

    def log(self, text: str) -> None:
        if self.verbose:
            print(f"t={self.loop.time():9.3f} {text}")  # noqa: T201

    def mutate(self, process: Process) -> None:
        if self._mutate is not None:
            self._mutate(process)

    # -- hooks of the store and the IdP -------------------------------------------------------

    def put_landed(self, key: TokenKey, token_set: TokenSet) -> None:
        """A write landed: I9 (not a set the app forgot), I8 (a client token under the key of
        the client it was issued to)."""
        refresh = token_set.refresh_token
        session = None if refresh is None else self.idp.by_refresh.get(refresh.reveal())
        if session is not None and session.number in self.forgotten:
            self.violation(f"I9: {key} was stored again after the app forgot it")
        access = self.idp.access.get(token_set.access_token.reveal())
        owner = None if access is None else access.session.client
        if key.is_client and owner is not None and not str(key.client).startswith(f"{owner}#"):
            self.violation(f"I8: {access.session.client}'s client token stored as {key}")

    def claimed(self, process: Process, key: TokenKey, owner: str, claim_for: float) -> None:
        if key.provider not in process.providers:
            self.violation(f"I14: pid {process.pid} claimed {key}, of a provider it does not serve")
        invariants.check_claim(self, key, owner, claim_for)

    def holds_newer(self, process: Process, session: Session, token: str) -> bool:
        """Whether ``process`` holds a set of ``session`` newer than ``token``, or held one
        when it read a rolled-back set of that session (it may have traded it for the store's
        older one since)."""
        after = set(session.chain[session.chain.index(token) + 1 :])
        return bool(after & (self._held(process) | session.rollback_held.get(process.pid, set())))

    @staticmethod
    def _held(process: Process) -> set[str]:
        return {t.refresh_token.reveal() for t in process.holds() if t.refresh_token}

    def read_by(self, process: Process, token_sets: list[TokenSet]) -> None:
        """``process`` read ``token_sets`` from the store (its store call returns now). One a
        rollback brought back, read while holding a newer set of its session: from here on
        the process knows the store is behind, and must keep or write back its own. A process
        that no longer held the newer set when it read the older one (its working set dropped
        it first, before it could see the rollback) cannot tell, as one that never held it."""
        for token_set in token_sets:
            refresh = token_set.refresh_token
            session = None if refresh is None else self.idp.by_refresh.get(refresh.reveal())
            if session is None or refresh is None or refresh.reveal() not in session.rolled_back:
                continue
            after = set(session.chain[session.chain.index(refresh.reveal()) + 1 :])
            if newer := after & self._held(process):
                session.rollback_held.setdefault(process.pid, set()).update(newer)

    def rolled_back(self) -> None:
        """The store rolled back: the rotations after each session's stored token are no longer
        durable; a session whose set is gone is lost excusably (see the docstring)."""
        self.traffic.event()
        stored: dict[int, str] = {}
        for key in self.store.records:
            session, refresh = invariants.stored_session(self, key)
            if session is not None and refresh is not None:
                stored[session.number] = refresh
        self.forgotten -= set(stored)  # the rollback undid those forgets
        for session in self.idp.sessions:
            if not session.alive or session.number < 0 or not session.rotating:
                continue
            token = stored.get(session.number)
            if token is None:  # its every token lost (a login retried after it may bring one
                session.excused = session.excused or "the store rolled back its login"
                session.rolled_back.update(session.chain)  # back: excused, as any rolled back)
                continue
            if token != session.current and not any(
                self.holds_newer(p, session, token) for p in self.live()
            ):
                session.excused = session.excused or "the store rolled back its set, held nowhere"
            for later in session.chain[session.chain.index(token) :]:
                session.rolled_back.add(later)
                rotation = session.rotations.get(later)
                if rotation is not None:
                    rotation.durable = False

    def forgotten_done(self, sessions: list[Session]) -> None:
        """The app's forget (revoke, logout) of ``sessions`` returned: their sets are gone."""
        self.forgotten.update(session.number for session in sessions)

    # -- processes ------------------------------------------------------------------------------

    async def boot(self, number: int) -> Process:
        self._pids += 1
        process = Process(self, number, self._pids)
        self.processes.append(process)
        self.traffic.event()
        self.log(f"process {number} boots as pid {process.pid}")

        async def start() -> None:
            process.register()
            await process.manager.start()

        try:
            await process.spawn(start())
        except (StoreError, Crashed) as exc:
            self.log(f"pid {process.pid} could not start: {exc!r}")
        return process

    def live(self) -> list[Process]:
        return [p for p in self.processes if p.alive]

    # -- the run ---------------------------------------------------------------------------

    async def main(self) -> None:
        config, features = self.config, self.features
        chaos.plan_outages(self)
        first = await self.boot(0)
        for account in self.accounts:
            if self.app_of(0) == 1 and not account[1].startswith("b-"):
                await self.login(account, first)
        for number in range(1, config.processes):
            process = await self.boot(number)
            if number == features.second_app:
                for account in self.served(process):
                    await self.login(account, process)
        for process in self.live():
            process.spawn(self.callers(process))
        ending, background = chaos.start(self)
        await asyncio.sleep(config.duration)
        await asyncio.gather(*ending)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.settle()

    def background(self, coro: Any) -> asyncio.Task[Any]:
        """A task of nobody's (chaos, the app's operator)."""
        return self.loop.create_task(coro, context=contextvars.Context())

    async def settle(self) -> None:
        """No more faults: every user's current session must serve from every process (I3),
        dead sets leave the duty (I10), and forgetting every user must leave no entry and no
        task behind (I5)."""
        self.settling = True  # no more pauses either
        self.idp.fault_rate = 0.0
        self.store.fault_rate = 0.0
        self.store.outages.clear()
        for process in self.live():
            process.clock.frozen_until = 0.0
            for task in process.tasks:
                if chaos.is_app_task(task):
                    task.cancel()
        await asyncio.sleep(1.0 + self.traffic.settle_wait())
        self.idp.expire_idle()
        invariants.check_duty(self)
        finals = []
        for number in sorted({p.number for p in self.processes}):
            alive = [p for p in self.processes if p.number == number and p.alive]
            finals.append(alive[-1] if alive else await self.boot(number))
        for account in self.accounts:
            for process in finals:
                if account in self.served(process):
                    await self._final_call(process, account)
        features = self.features
        if features.junk or features.grant_chaos or features.rollbacks or features.refresh_ttl:
            await invariants.check_dead_leave(self)
        invariants.check_reauth_cost(self)
        for process in finals:
            await self._forget_all(process)
        for text in self.store.check():  # I7: a real store's recorded history (real_stores.py)
            self.violation(f"I7: {text}")

    async def _final_call(self, process: Process, account: Account) -> None:
        provider, user = account
        session = self._current_session(account)
        self.idp.expire_idle()
        self.traffic.use(account, process.pid)
        for attempt in range(5):  # answers may still be slower than the token timeout
            try:
                token = await process.spawn(process.manager.access_token(provider, user))
                break
            except ReauthorizationRequired as exc:
                self.idp.expire_idle()
                lost = (
                    provider != "fin"
                    and session is not None
                    and session.alive
                    and session.excused is None
                ) or (provider == "fin" and account not in self.forgets)
                if lost:
                    self.violation(
                        f"I3: final: {provider}/{user} lost ({exc.reason}) on pid {process.pid}"
                    )
                return
            except (StoreError, TransportError) as exc:
                if attempt == 4:
                    self.violation(
                        f"I3: final: {provider}/{user} never served on pid {process.pid}: {exc!r}"
                    )
                    return
                await asyncio.sleep(5.0)
        ok, owner = self.idp.valid(token)
        if not ok and not (owner is not None and owner.excused):
            self.violation(f"I2: final: pid {process.pid} served {provider}/{user} a refused token")

    async def _forget_all(self, process: Process) -> None:
        self.vault.clear()
        # A login the app started before settling lands first (a forget, then a login that
        # completes, leaves that login's set: the app's order, not the SDK's).
        await process.spawn(process.manager.wait_idle())
        for provider, user in self.accounts:
            if provider not in process.providers:
                continue
            await process.spawn(process.manager.forget(provider, user))
        await process.spawn(process.manager.forget("fin"))
        await process.spawn(process.manager.wait_idle())
        held = len(process.manager._registry)
        if held:
            self.violation(f"I5: pid {process.pid} holds {held} entries after forgetting all")
        await chaos.aclose(self, process)
        if process.manager._tasks:
            self.violation(f"I5: pid {process.pid} has tasks left after aclose")

    def run(self) -> list[str]:
        sdk_log = logging.getLogger("aiofinaccess")
        level, handlers = sdk_log.level, list(sdk_log.handlers)
        sdk_log.setLevel(logging.DEBUG if self.verbose else logging.CRITICAL)
        if self.verbose:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("t=%(virtual)9.3f   sdk %(message)s"))
            handler.addFilter(self._stamp)
            sdk_log.addHandler(handler)
        asyncio.set_event_loop(self.loop)
        self._main = self.loop.create_task(self.main())
        try:
            self.loop.run_until_complete(self._main)
        except Stalled as exc:
            self.violation(f"I4: the system stalled: {exc}")
        except asyncio.CancelledError:  # a message raised: its violation is recorded
            pass
        except Exception as exc:  # a failure of the harness itself must fail the seed too
            self.violation(f"harness: {exc!r}")
        finally:
            for process in self.processes:
                process.alive = False
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                with contextlib.suppress(Stalled):
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()
            asyncio.set_event_loop(None)
            sdk_log.setLevel(level)
            sdk_log.handlers[:] = handlers
        return self.violations


def run_seed(
    seed: int,
    *,
    mutate: Callable[[Process], None] | None = None,
    verbose: bool = False,
    features: Features | None = None,
    config: Config | None = None,
) -> World:
    world = World(seed, mutate=mutate, verbose=verbose, features=features, config=config)
    world.run()
    return world
