"""The simulated world: processes running real SessionManagers on simulated parts, app callers,
crashes and restarts, and the invariants checked as it runs.

One seed decides everything: the configuration (processes, users, lifetimes, fault rates,
lease and timeout settings), every latency, every fault, every crash. The SDK runs unchanged
except for the two doors a simulation needs: its clock (a per-process clock on virtual time)
and its token endpoint (the SDK's own OAuth client, sending to the simulated IdP).

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
  allowance excuses it (checked at every
  ``ReauthorizationRequired`` and in the final check, where every user's current session must
  serve a valid token from every process);
* **I4** every call without a deadline of its own returns within ``bound`` virtual seconds, and
  the loop never stalls (checked at every call and by the loop);
* **I5** no task ends with an exception nobody retrieved, and after every user is forgotten
  no process holds an entry or a task (checked by the loop's exception handler and at the
  end);
* **I6** on a store that keeps the refresh duty (a third of the worlds, some with processes
  that only serve from a small working set), every stored set whose refresh token is live has
  a due time once faults stop: no write, claim or reschedule dropped it (checked at the end);
* **I7** in the worlds that run a real store (SQLite inline, Redis's scripts on fakeredis: one
  in nine, see real_stores.py), each key's recorded operations are linearizable as a
  compare-and-set register and no two lease holders overlap (checked at the end).

Store outages last less than half a lease and are two leases apart (see README "Failures": a
longer outage while a renewed set waits to be written can let another process replay its
predecessor). Random store failures (up to 10 % of calls) come on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import attrs

from aiofinaccess import (
    ClientCredentials,
    Oidc,
    ReauthorizationRequired,
    RefreshPolicy,
    RetryPolicy,
    SessionManager,
    StoreError,
    TransportError,
)
from aiofinaccess.core.errors import ApiError
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.session.events import WriteAbandoned
from tests.simulation.idp import CLIENT_ID, CLIENT_SECRET, Idp, SimOAuthClient
from tests.simulation.loop import Stalled, VirtualTimeLoop
from tests.simulation.real_stores import shared_store, store_impl

EPOCH = 1_800_000_000.0
PROVIDER = Oidc.endpoints(name="idp", token_url="https://idp.sim/token")
# A finAPI-like client: client_credentials, the same token reissued until it expires.
CLIENT_PROVIDER = Oidc.endpoints(
    name="fin", token_url="https://fin.sim/token", rotates_refresh_tokens=False
)
CREDENTIALS = ClientCredentials(CLIENT_ID, CLIENT_SECRET)
CURRENT: contextvars.ContextVar[Process | None] = contextvars.ContextVar("process", default=None)


class _Failed(Exception):
    """An app call ended with one of the SDK's transient errors (already counted)."""


class Crashed(BaseException):
    """Raised by every simulated I/O call of a process that has crashed."""


@attrs.frozen
class Config:
    """One world's settings, all drawn from its seed."""

    processes: int
    users: int
    duration: float
    access_ttl: float
    token_timeout: float
    lease_ttl: float
    max_concurrent: int
    idp_faults: float
    store_faults: float
    crashes_per_minute: float
    restarts_per_minute: float
    outages: int
    calls_per_second: float
    keep_alive: bool
    skew: float
    # The refresh duty: "off" (a store without it: each process plans its own sets), "all"
    # (every process claims due sets from the store) or "mixed" (process 0 claims; the others
    # claim or only serve, with a working set of `working_set` entries or unbounded).
    duty: str = "off"
    working_set: int | None = None
    duty_poll: float = 1.0
    duty_batch: int = 100
    duty_gather: float = 0.1
    # Keycloak's "Refresh Token Max Reuse" of the IdP (see idp.py): 0, or 1 in some worlds.
    idp_max_reuse: int = 0
    # The store: the simulated one, or a real one ("sqlite", "redis") on virtual time behind the
    # same faults, its history checked at the end (tests/simulation/real_stores.py).
    store_impl: str = "sim"

    @classmethod
    def draw(cls, rng: random.Random) -> Config:
        lease_ttl = rng.choice([1.5, 3.0, 10.0])
        return cls(
            processes=rng.choice([1, 2, 2, 3, 3, 4]),
            users=rng.randint(1, 4),
            duration=rng.uniform(35.0, 100.0),
            access_ttl=rng.choice([4.0, 10.0, 30.0]),
            token_timeout=rng.choice([1.0, 2.0, 4.0]),
            lease_ttl=lease_ttl,
            max_concurrent=rng.choice([1, 2, 16]),
            idp_faults=rng.choice([0.0, 0.05, 0.2]),
            store_faults=rng.choice([0.0, 0.02, 0.1]),
            crashes_per_minute=rng.choice([0.0, 0.5, 2.0]),
            restarts_per_minute=rng.choice([0.0, 0.5]),
            outages=rng.choice([0, 0, 1, 3]),
            calls_per_second=rng.choice([0.5, 2.0, 5.0]),
            keep_alive=rng.random() < 0.5,
            skew=rng.choice([0.0, 0.2]),
            duty=rng.choice(["off", "all", "mixed"]),
            working_set=rng.choice([None, 1, 2]),
            duty_poll=rng.choice([0.2, 1.0]),
            duty_batch=rng.choice([1, 100]),
        )


class SimClock:
    """A process's clocks: its own monotonic origin and a slightly wrong wall clock."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: float, skew: float) -> None:
        self._loop = loop
        self._origin = origin
        self._skew = skew

    def wall(self) -> float:
        return EPOCH + self._loop.time() + self._skew

    def monotonic(self) -> float:
        return self._origin + self._loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Process:
    """One incarnation of a simulated worker process."""

    def __init__(self, world: World, number: int, pid: int) -> None:
        self.world = world
        self.number = number
        self.pid = pid
        self.incarnation = pid
        self.alive = True
        self.tasks: list[asyncio.Task[Any]] = []
        rng = world.rng
        self.clock = SimClock(
            world.loop, rng.uniform(0, 1e6), rng.uniform(-1, 1) * world.config.skew
        )
        config = world.config
        fleet: dict[str, Any] = {}
        if config.duty != "off":
            claims = config.duty == "all" or number == 0 or rng.random() < 0.5
            fleet = {
                "duty": claims,
                "working_set": None if claims else config.working_set,
                "duty_poll": config.duty_poll,
                "duty_batch": config.duty_batch,
                "duty_gather": config.duty_gather,
            }
        self.duty = bool(fleet.get("duty"))
        self.manager = SessionManager(
            store=world.store.client(self, duty=config.duty != "off"),  # type: ignore[arg-type]
            clock=self.clock,
            policy=RefreshPolicy(),
            retry=RetryPolicy(
                initial=0.05,
                max_wait=0.5,
                max_retry_after=3.0,
                backoff_initial=0.5,
                backoff_max=10.0,
            ),
            keep_alive=config.keep_alive,
            max_concurrent_refreshes=config.max_concurrent,
            token_timeout=config.token_timeout,
            lease_ttl=config.lease_ttl,
            close_timeout=3.0,
            pending_write_timeout=30.0,
            store_timeout=5.0,
            **fleet,
        )
        driver = self.manager._driver
        driver._random.seed(rng.getrandbits(64))
        clients = {
            provider.name: SimOAuthClient(
                world,
                self,
                provider,
                CREDENTIALS,
                None,
                clock=self.clock,
                timeout=config.token_timeout,
            )
            for provider in (PROVIDER, CLIENT_PROVIDER)
        }
        driver.endpoint = clients.__getitem__
        self.manager.subscribe(self._event)
        world.mutate(self)

    def _event(self, event: object) -> None:
        if isinstance(event, WriteAbandoned) and self.alive:  # a crash abandons by design
            self.world.violation(f"I3: process {self.pid} abandoned a write of a renewed set")

    def check_alive(self) -> None:
        if not self.alive:
            raise Crashed

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task of this process (it dies with it)."""
        token = CURRENT.set(self)
        try:
            task = self.world.loop.create_task(coro)
        finally:
            CURRENT.reset(token)
        return task

    def crash(self) -> None:
        self.alive = False
        self.world.idp.excuse_crash(self.pid)
        for task in self.tasks:
            task.cancel()


class World:
    """One seeded run."""

    def __init__(
        self,
        seed: int,
        *,
        config: Config | None = None,
        mutate: Callable[[Process], None] | None = None,
        verbose: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        if config is None:
            # duty_gather came later: it has a stream of its own, so every seed's world
            # (the pinned ones of the regression tests too) stays what it was.
            gather = random.Random(f"{seed}:gather").choice([0.01, 0.1, 0.5])
            reuse = 1 if random.Random(f"{seed}:reuse").random() < 0.3 else 0
            impl = store_impl(seed)
            config = attrs.evolve(
                Config.draw(self.rng), duty_gather=gather, idp_max_reuse=reuse, store_impl=impl
            )
        self.config = config
        self.loop = VirtualTimeLoop()
        self.loop.set_task_factory(self._task_factory)
        self.loop.set_exception_handler(self._exception)
        self.idp = Idp(
            self,
            random.Random(self.rng.getrandbits(64)),
            access_ttl=self.config.access_ttl,
            faults=self.config.idp_faults,
            max_reuse=self.config.idp_max_reuse,
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
        self.users = [f"user-{n}" for n in range(self.config.users)]
        self.bound = 3 * self.config.token_timeout + 3 * self.config.lease_ttl + 10.0
        self.calls = 0
        self.slowest = 0.0
        self.failures: dict[str, int] = {}
        self._reconnecting: set[str] = set()

    # -- plumbing -------------------------------------------------------------------------------

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        owner = CURRENT.get()
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

    def message(self, coro: Coroutine[Any, Any, None]) -> None:
        """Something on the wire: it belongs to no process and survives its sender."""
        task = self.loop.create_task(coro, context=contextvars.Context())
        self._messages.add(task)
        task.add_done_callback(self._messages.discard)

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

    # -- processes ------------------------------------------------------------------------------

    async def boot(self, number: int) -> Process:
        self._pids += 1
        process = Process(self, number, self._pids)
        self.processes.append(process)
        self.log(f"process {number} boots as pid {process.pid}")

        async def start() -> None:
            process.manager.register(PROVIDER, CREDENTIALS)
            process.manager.register(CLIENT_PROVIDER, CREDENTIALS)
            await process.manager.start()

        try:
            await process.spawn(start())
        except (StoreError, Crashed) as exc:
            self.log(f"pid {process.pid} could not start: {exc!r}")
        return process

    def live(self) -> list[Process]:
        return [p for p in self.processes if p.alive]

    async def login(self, user: str, via: Process) -> None:
        """The user connects (again): a new session, stored by ``via`` (retried like an app)."""
        session, body = self.idp.login(user)
        token_set = parse_token_response(body, sent=self.anchor(via))
        while via.alive:
            try:
                await via.spawn(via.manager.store_token_set("idp", user, token_set))
                if session.excused == "its login was not stored yet":
                    session.excused = None
                return
            except (StoreError, Crashed):
                await asyncio.sleep(0.1)

    # -- the app ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _timed(self, process: Process, deadline: float | None, what: str) -> Iterator[None]:
        """Count one app call and check I4 for it; the SDK's transient errors are counted."""
        started = self.loop.time()
        self.calls += 1
        try:
            yield
        except (StoreError, TransportError, ApiError) as exc:
            self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1
            raise _Failed from exc
        finally:
            took = self.loop.time() - started
            self.slowest = max(self.slowest, took)
            if deadline is None and took > self.bound:
                self.violation(f"I4: {what} by pid {process.pid} took {took:.1f} s")

    async def call(self, process: Process, user: str, deadline: float | None) -> None:
        if self.verbose:  # a million calls a run: format only when tracing
            self.log(f"call by pid {process.pid} for {user} (deadline {deadline})")
        try:
            with self._timed(process, deadline, "a call"):
                async with asyncio.timeout(deadline):
                    token = await process.manager.access_token("idp", user)
        except TimeoutError:
            return  # the caller gave up (its own deadline): the renewal goes on
        except ReauthorizationRequired as exc:
            if not self._lost_excusably(user):
                self.violation(
                    f"I3: {user} asked to re-authorize ({exc.reason}) by pid {process.pid}"
                )
            elif process.alive and user not in self._reconnecting:
                self._reconnecting.add(user)
                try:
                    await self.login(user, process)
                finally:
                    self._reconnecting.discard(user)
            return
        except _Failed:
            return
        ok, session = self.idp.valid(token)
        if not ok and not (session is not None and session.excused):
            access = self.idp.access.get(token)
            self.violation(
                f"I2: pid {process.pid} handed {user} a token the API refuses "
                f"(expired {self.wall() - access.expires_at:.3f} s ago)"
                if access is not None
                else f"I2: pid {process.pid} handed {user} an unknown token"
            )

    async def client_call(self, process: Process, deadline: float | None) -> None:
        """The app's client token, as a resource module uses it: on a 401, one renewal
        (``renew_after_rejection``, at once even for a reissued finAPI token) and a replay.

        I2 for client tokens: never expired at hand-out, and never the token just refused. (The
        API may revoke a client token at any moment, even one in flight: that is a 401 the
        app replays, not the SDK's fault.)"""
        refused = None
        try:
            with self._timed(process, deadline, "a client-token call"):
                async with asyncio.timeout(deadline):
                    token = await process.manager.access_token("fin")
                    if not self.idp.valid(token)[0]:
                        refused = token
                        token = await process.manager.renew_after_rejection("fin", None, token)
        except (TimeoutError, _Failed):
            return
        access = self.idp.access.get(token)
        if access is None or access.expires_at <= self.wall():
            self.violation(f"I2: pid {process.pid} handed out an expired client token {token}")
        if token == refused:
            self.violation(f"I2: pid {process.pid} renewed a refused client token to itself")

    def _lost_excusably(self, user: str) -> bool:
        """Whether some session of ``user`` was lost for a reason that is not the SDK's fault
        (a process may still hold that one; a new login replaces it on the next call)."""
        return any(s.excused is not None for s in self.idp.sessions if s.user == user)

    def _current_session(self, user: str) -> Any:
        sessions = [s for s in self.idp.sessions if s.user == user]
        return sessions[-1] if sessions else None

    async def callers(self, process: Process) -> None:
        rng = self.rng
        while True:
            await asyncio.sleep(rng.expovariate(self.config.calls_per_second))
            deadline = rng.choice([None, None, None, 0.2, 2.0])
            if rng.random() < 0.2:
                process.spawn(self.client_call(process, deadline))
            else:
                process.spawn(self.call(process, rng.choice(self.users), deadline))

    async def chaos(self) -> None:
        """Crashes, graceful restarts and store outages at random times."""
        config, rng = self.config, self.rng
        rate = (config.crashes_per_minute + config.restarts_per_minute) / 60.0
        while rate > 0:
            pause = rng.expovariate(rate)
            if self.loop.time() + pause >= config.duration:
                return
            await asyncio.sleep(pause)
            candidates = self.live()
            if not candidates:
                continue
            victim = rng.choice(candidates)
            if rng.random() < config.crashes_per_minute / (
                config.crashes_per_minute + config.restarts_per_minute
            ):
                self.log(f"pid {victim.pid} crashes")
                victim.crash()
            else:
                self.log(f"pid {victim.pid} restarts gracefully")
                for task in victim.tasks:
                    if task is not asyncio.current_task() and task.get_coro().__name__ in (
                        "callers",
                        "call",
                        "client_call",
                    ):  # type: ignore[union-attr]
                        task.cancel()
                await victim.manager.aclose()
                victim.alive = False
            await asyncio.sleep(rng.uniform(0.1, 3.0))
            process = await self.boot(victim.number)
            process.spawn(self.callers(process))

    # -- the run ---------------------------------------------------------------------------

    async def _revoke_client_tokens(self) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(1 / 20.0))
            self.idp.revoke_client_token()

    async def main(self) -> None:
        config, rng = self.config, self.rng
        # Outages shorter than half a lease, apart by two leases (the model's promise to the
        # SDK: see the module docstring).
        begin = 0.0
        for _ in range(config.outages):
            begin += rng.uniform(2 * config.lease_ttl, config.duration / max(1, config.outages))
            self.store.outages.append((begin, begin + rng.uniform(0.1, 0.5 * config.lease_ttl)))
            begin = self.store.outages[-1][1]
        first = await self.boot(0)
        for user in self.users:
            await self.login(user, first)
        for number in range(1, config.processes):
            await self.boot(number)
        for process in self.live():
            process.spawn(self.callers(process))
        chaos = self.loop.create_task(self.chaos(), context=contextvars.Context())
        revocations = self.loop.create_task(
            self._revoke_client_tokens(), context=contextvars.Context()
        )
        await asyncio.sleep(config.duration)
        await chaos  # it ends its last crash or restart, then stops
        revocations.cancel()
        await asyncio.gather(revocations, return_exceptions=True)
        await self.settle()

    async def settle(self) -> None:
        """No more faults: every user's current session must serve from every process (I3),
        and forgetting every user must leave no entry and no task behind (I5)."""
        self.idp.fault_rate = 0.0
        self.store.fault_rate = 0.0
        self.store.outages.clear()
        for process in self.live():
            for task in process.tasks:
                if task.get_coro().__name__ in ("callers", "call", "client_call"):  # type: ignore[union-attr]
                    task.cancel()
        await asyncio.sleep(1.0)
        self._check_duty()
        finals = []
        for number in sorted({p.number for p in self.processes}):
            alive = [p for p in self.processes if p.number == number and p.alive]
            finals.append(alive[-1] if alive else await self.boot(number))
        for user in self.users:
            for process in finals:
                await self._final_call(process, user)
        for process in finals:
            await self._forget_all(process)
        for text in self.store.check():  # I7: a real store's recorded history
            self.violation(f"I7: {text}")

    def _check_duty(self) -> None:
        """I6: on a store that keeps the refresh duty, every stored set whose refresh token is
        still live at the IdP has a due time: no write or claim dropped it from the duty."""
        if self.config.duty == "off":
            return
        store = self.store
        for key, (_, data) in store.records.items():
            token_set = store.codec.decode(data, kind="token_set", key=str(key))
            refresh = token_set.refresh_token
            if refresh is None:
                continue
            session = self.idp.by_refresh.get(refresh.reveal())
            if session is None or not session.alive or session.current != refresh.reveal():
                continue
            if key not in store.due:
                self.violation(f"I6: {key.subject or key.provider} is stored but off the duty")

    async def _final_call(self, process: Process, user: str) -> None:
        session = self._current_session(user)
        for attempt in range(5):  # answers may still be slower than the token timeout
            try:
                token = await process.spawn(process.manager.access_token("idp", user))
                break
            except ReauthorizationRequired as exc:
                if session is not None and session.alive and session.excused is None:
                    self.violation(f"I3: final: {user} lost ({exc.reason}) on pid {process.pid}")
                return
            except (StoreError, TransportError) as exc:
                if attempt == 4:
                    self.violation(f"I3: final: {user} never served on pid {process.pid}: {exc!r}")
                    return
                await asyncio.sleep(5.0)
        ok, owner = self.idp.valid(token)
        if not ok and not (owner is not None and owner.excused):
            self.violation(f"I2: final: pid {process.pid} served {user} a refused token")

    async def _forget_all(self, process: Process) -> None:
        for user in self.users:
            await process.spawn(process.manager.forget("idp", user))
        await process.spawn(process.manager.forget("fin"))
        await process.spawn(process.manager.wait_idle())
        held = len(process.manager._registry)
        if held:
            self.violation(f"I5: pid {process.pid} holds {held} entries after forgetting all")
        await process.manager.aclose()
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
        try:
            self.loop.run_until_complete(self.main())
        except Stalled as exc:
            self.violation(f"I4: the system stalled: {exc}")
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
    seed: int, *, mutate: Callable[[Process], None] | None = None, verbose: bool = False
) -> World:
    world = World(seed, mutate=mutate, verbose=verbose)
    world.run()
    return world
