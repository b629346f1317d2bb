"""The application of a world: who its users are and through which processes and clients
they connect, its calls for tokens (checking I2-I4 at every hand-out), its logins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiofinaccess import (
    ClientCredentials,
    Provider,
    ReauthorizationRequired,
    StoreError,
    TransportError,
)
from aiofinaccess.core.errors import ApiError
from aiofinaccess.core.tokens import parse_token_response
from tests.simulation.config import (
    CLIENT_ID,
    CLIENT_PROVIDER,
    CREDENTIALS,
    PROVIDER,
    PROVIDER_CLIENTS,
    PROVIDERS,
    SECOND_APP_CLIENT,
    credentials,
)
from tests.simulation.process import Crashed, Process

if TYPE_CHECKING:
    import random

    from tests.simulation.config import Config, Features
    from tests.simulation.idleness import Traffic
    from tests.simulation.idp import Idp, Session
    from tests.simulation.loop import VirtualTimeLoop

Account = tuple[str, str]  # (provider, user)


#: RefreshPolicy.expiry_margin: a pause longer than this inside a call excuses I2 there.
EXPIRY_MARGIN = 1.0


class _Failed(Exception):
    """An app call ended with one of the SDK's transient errors (already counted)."""


class App:
    """The world's application (a part of :class:`~tests.simulation.world.World`)."""

    if TYPE_CHECKING:
        rng: random.Random
        config: Config
        features: Features
        idp: Idp
        loop: VirtualTimeLoop
        users: list[str]
        accounts: list[Account]
        vault: dict[str, str]
        bound: float
        calls: int
        slowest: float
        failures: dict[str, int]
        forgets: dict[Account, int]
        verbose: bool
        _reconnecting: set[Account]
        traffic: Traffic

        def live(self) -> list[Process]: ...
        def log(self, text: str) -> None: ...
        def violation(self, text: str) -> None: ...
        def wall(self) -> float: ...
        def anchor(self, process: Process) -> Any: ...

    # -- who is who ---------------------------------------------------------------------------

    def _accounts(self) -> list[Account]:
        features = self.features
        accounts = [("idp", user) for user in self.users]
        for provider in features.providers[1:]:
            accounts += [(provider, f"user-{n}") for n in range(features.users[provider])]
        if features.second_app is not None:
            accounts += [("idp", "b-user-0")]
        accounts += [("fin", f"fin-user-{n}") for n in range(features.finapi_users)]
        for _, user in accounts:
            if user.startswith("fin-"):
                self.idp.passwords[user] = f"password of {user}"
        # The app's password vault: a user it forgets leaves it, a login brings them back.
        self.vault: dict[str, str] = dict(self.idp.passwords)
        return accounts

    def app_of(self, number: int) -> int:
        second = self.features.second_app
        return 2 if second is not None and number >= second else 1

    def client_of(self, account: Account) -> str:
        provider, user = account
        if user.startswith("b-"):
            return SECOND_APP_CLIENT
        return PROVIDER_CLIENTS.get(provider, CLIENT_ID)

    def registrations(self, process: Process) -> list[tuple[Provider, ClientCredentials, Any]]:
        """What ``process`` registers: its app's providers (a subset, for some), each with the
        client its sets belong to, and finAPI with the app's password lookup."""
        if self.app_of(process.number) == 2:
            second = credentials(SECOND_APP_CLIENT)
            return [(PROVIDER, second, None), (CLIENT_PROVIDER, second, None)]
        names = self.features.subsets.get(process.number, self.features.providers)
        found = [
            (PROVIDERS[name], credentials(PROVIDER_CLIENTS[name]), None)
            for name in self.features.providers
            if name in names
        ]
        lookup = self.vault.get if self.features.finapi_users else None
        return [*found, (CLIENT_PROVIDER, CREDENTIALS, lookup)]

    def served(self, process: Process) -> list[Account]:
        """The accounts ``process``'s app calls for through it."""
        app, providers = self.app_of(process.number), process.providers
        return [
            account
            for account in self.accounts
            if account[0] in providers and (account[1].startswith("b-")) == (app == 2)
        ]

    def serving_providers(self) -> set[str]:
        return {name for p in self.live() for name in p.providers}

    async def login(self, account: Account, via: Process) -> None:
        """The user connects (again): a new session, stored by ``via`` (retried like an app)."""
        provider, user = account
        self.traffic.use(account, via.pid)
        if provider == "fin":
            await self._password_login(user, via)
            return
        session, body = self.idp.login(user, provider=provider, client=self.client_of(account))
        token_set = parse_token_response(body, sent=self.anchor(via))
        while via.alive:
            try:
                await via.spawn(via.manager.store_token_set(provider, user, token_set))
                if session.excused == "its login was not stored yet":
                    session.excused = None
                return
            except (StoreError, Crashed):
                await asyncio.sleep(0.1)

    async def _password_login(self, user: str, via: Process) -> None:
        self.vault[user] = self.idp.passwords[user]
        while via.alive:
            try:
                await via.spawn(via.manager.login_with_password("fin", user, f"password of {user}"))
                return
            except (StoreError, TransportError, ApiError, Crashed):
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
            if deadline is None and took > self.bound + process.clock.paused_for(started):
                self.violation(f"I4: {what} by pid {process.pid} took {took:.1f} s")

    async def call(self, process: Process, account: Account, deadline: float | None) -> None:
        provider, user = account
        if self.verbose:  # a million calls a run: format only when tracing
            self.log(f"call by pid {process.pid} for {provider}/{user} (deadline {deadline})")
        started = self.loop.time()
        self.traffic.use(account, process.pid)
        try:
            with self._timed(process, deadline, "a call"):
                async with asyncio.timeout(deadline):
                    token = await process.manager.access_token(provider, user)
        except TimeoutError:
            return  # the caller gave up (its own deadline): the renewal goes on
        except ReauthorizationRequired as exc:
            if not self._lost_excusably(account):
                self.violation(
                    f"I3: {provider}/{user} asked to re-authorize ({exc.reason}) "
                    f"by pid {process.pid}"
                )
            elif process.alive and account not in self._reconnecting:
                self._reconnecting.add(account)
                try:
                    await self.login(account, process)
                finally:
                    self._reconnecting.discard(account)
            return
        except _Failed:
            return
        self.idp.expire_idle()
        ok, session = self.idp.valid(token)
        # A process paused inside the call for longer than the expiry margin may hand out a
        # token that expired during the pause: no client sees a pause after its last check.
        paused = process.clock.paused_between(started, None) > EXPIRY_MARGIN
        if not ok and not paused and not (session is not None and session.excused):
            access = self.idp.access.get(token)
            self.violation(
                f"I2: pid {process.pid} handed {provider}/{user} a token the API refuses "
                f"(expired {self.wall() - access.expires_at:.3f} s ago)"
                if access is not None
                else f"I2: pid {process.pid} handed {provider}/{user} an unknown token"
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

    def _lost_excusably(self, account: Account) -> bool:
        """Whether some session of ``account`` was lost for a reason that is not the SDK's
        fault (a process may still hold that one; a new login replaces it on the next call).
        A finAPI user is lost excusably only after the app forgot it."""
        if account[0] == "fin":
            return account in self.forgets
        self.idp.expire_idle()
        return any(s.excused is not None for s in self.idp.sessions if s.account == account)

    def _current_session(self, account: Account) -> Session | None:
        sessions = [s for s in self.idp.sessions if s.account == account]
        return sessions[-1] if sessions else None

    async def callers(self, process: Process) -> None:
        rng = self.rng
        served = self.served(process)
        while True:
            await asyncio.sleep(rng.expovariate(self.config.calls_per_second))
            await process.clock.frozen()  # a paused process's app makes no calls either
            deadline = rng.choice([None, None, None, 0.2, 2.0])
            if rng.random() < 0.2 or not served:
                process.spawn(self.client_call(process, deadline))
            else:
                account = rng.choice(served)
                if self.traffic.calls(account):  # not while its user is away (idleness.py)
                    process.spawn(self.call(process, account, deadline))
