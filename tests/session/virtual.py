"""Precise schedules for the token core's tests: managers on the simulation's virtual-time loop,
a store whose leases run out on that loop's clock (as Redis's do), and an identity provider with
Keycloak's rotation (a replayed refresh token kills the session) behind the SDK's own OAuth
client and transport, on an aiohttp session that never opens a socket.

Nothing here sleeps for real: a test's waits cost no time, and every instant is exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from aiofinaccess import ClientCredentials, Oidc, Schedule, SessionManager
from aiofinaccess.core.errors import LeaseBusyError
from aiofinaccess.core.tokens import Secret, TokenKey, TokenSet
from aiofinaccess.oauth.client import OAuthClient
from aiofinaccess.stores import HeldLease
from aiofinaccess.stores.memory import MemoryStore
from tests.simulation.loop import VirtualTimeLoop

EPOCH = 1_800_000_000.0
PROVIDER = Oidc.endpoints(name="idp", token_url="https://idp.test/token")
CLIENT = ClientCredentials("client", "secret")

_T = TypeVar("_T")


def run(main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``main()`` on a fresh virtual-time loop (it starts at 0)."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def now() -> float:
    """Virtual seconds since the loop started."""
    return asyncio.get_running_loop().time()


class LoopClock:
    """A process's clocks on the virtual loop."""

    def wall(self) -> float:
        return EPOCH + now()

    def monotonic(self) -> float:
        return now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class LeasedStore(MemoryStore):
    """A memory store whose leases run out on the loop's clock. Extensions wait while the
    store is ``frozen_until`` a later instant (the holder is paused: its calls leave late)."""

    def __init__(self) -> None:
        super().__init__()
        self.leases: dict[TokenKey, tuple[int, float]] = {}
        self._owners = 0
        self.frozen_until = 0.0

    def lease_left(self, key: TokenKey) -> float:
        """How long the key stays blocked if its holder dies now."""
        held = self.leases.get(key)
        return 0.0 if held is None else max(0.0, held[1] - now())

    @asynccontextmanager
    async def lease(self, key: TokenKey, *, ttl: float) -> AsyncIterator[HeldLease]:  # type: ignore[override]
        self._owners += 1
        owner = self._owners
        deadline = now() + ttl
        while True:
            held = self.leases.get(key)
            if held is None or held[1] <= now():
                break
            if now() >= deadline:
                raise LeaseBusyError("lease busy")
            await asyncio.sleep(0.05)
        asked = now()
        self.leases[key] = (owner, asked + ttl)

        async def extend(_asked: float, extra: float) -> bool:
            if now() < self.frozen_until:
                await asyncio.sleep(self.frozen_until - now())
            held = self.leases.get(key)
            if held is None or held[0] != owner:
                return False
            self.leases[key] = (owner, max(held[1], now() + extra))
            return True

        try:
            yield HeldLease(asked + ttl, extend, clock=now)
        finally:
            if self.leases.get(key, (None, 0.0))[0] == owner:
                del self.leases[key]


@attrs.define
class Keycloak:
    """A token endpoint with Keycloak's rotation: each refresh token works once; presenting a
    spent one is a replay, answered ``invalid_grant``, and kills its session."""

    clock: LoopClock = attrs.Factory(LoopClock)
    lifetime: float = 60.0
    latency: float = 0.01
    live: dict[str, str] = attrs.Factory(dict)  # refresh token -> user
    dead: set[str] = attrs.Factory(set)  # users whose session a replay killed
    replays: list[str] = attrs.Factory(list)
    presented: list[str] = attrs.Factory(list)
    issued: int = 0
    # Awaited by the client before its request goes out (a paused or blocked sender).
    before_send: Callable[[], Coroutine[Any, Any, None]] | None = None

    def login(self, user: str) -> TokenSet:
        """A new session's first set, as the app stores it."""
        self.issued += 1
        refresh = f"rt-{user}-{self.issued}"
        self.live[refresh] = user
        wall = self.clock.wall()
        return TokenSet(
            f"at-{user}-{self.issued}",
            issued_at=wall,
            expires_at=wall + self.lifetime,
            refresh_token=refresh,
        )

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        token = form["refresh_token"]
        self.presented.append(token)
        user = self.live.pop(token, None)
        if user is None or user in self.dead:
            self.replays.append(token)
            self.dead.add(token.split("-")[1])
            return 400, {"error": "invalid_grant", "error_description": "Stale token"}
        self.issued += 1
        refresh = f"rt-{user}-{self.issued}"
        self.live[refresh] = user
        body = {
            "access_token": f"at-{user}-{self.issued}",
            "refresh_token": refresh,
            "expires_in": self.lifetime,
            "token_type": "Bearer",
        }
        return 200, body

    def client(self) -> OAuthClient:
        """The SDK's OAuth client, sending to this provider."""
        return _Client(self, PROVIDER, CLIENT, _Session(self), clock=self.clock, timeout=5.0)  # type: ignore[arg-type]


class _Client(OAuthClient):
    """The SDK's client, with the provider's ``before_send`` awaited before each request."""

    def __init__(self, idp: Keycloak, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idp = idp

    async def _token(
        self, grant_type: str, fields: Iterable[tuple[str, str | Secret | None]]
    ) -> TokenSet:
        if self._idp.before_send is not None:
            await self._idp.before_send()
        return await super()._token(grant_type, fields)


class _Response:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
        self.content_length = len(body)
        self.content = self
        self._body = body

    async def iter_chunked(self, _size: int) -> AsyncIterator[bytes]:
        yield self._body


class _Session:
    """Just enough of an aiohttp session for the transport: the request is the provider's."""

    def __init__(self, idp: Keycloak) -> None:
        self._idp = idp

    @asynccontextmanager
    async def request(self, *_args: Any, data: Any = None, **_kwargs: Any) -> AsyncIterator[Any]:
        status, body = self._idp.answer(dict(data or ()))
        await asyncio.sleep(self._idp.latency)
        yield _Response(status, json.dumps(body).encode())


def manager(store: MemoryStore, idp: Keycloak, **options: Any) -> SessionManager:
    """A manager on ``store`` whose token endpoint is ``idp`` (registered, not started)."""
    made = SessionManager(store=store, clock=idp.clock, schedule=Schedule(enabled=False), **options)
    made.register(PROVIDER, CLIENT)
    client = idp.client()
    made._oauth_clients[PROVIDER.name] = client  # type: ignore[assignment]
    return made
