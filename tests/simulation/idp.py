"""A simulated identity provider with Keycloak's rotation semantics, and the client that talks
to it through the SDK's own request building and response parsing.

Keycloak (``revokeRefreshToken=true``, max reuse 0): every refresh answers a new access token
and a new refresh token; presenting a refresh token that was already rotated is a replay: the
answer is ``invalid_grant`` ("Stale token") and the whole session dies, every access token with
it. The simulator also keeps what only it can know: for every rotation, whether its answer
reached a live process and whether its successor became durable in the store; a replay is a
violation unless that rotation was *excused* (its answer was lost, or the process that got it
crashed before the store held the successor).

In some worlds the IdP has Keycloak's "Refresh Token Max Reuse" 1: the refresh token used
last may be presented once more. There a lost answer is no excuse by itself: the SDK's replay
(the driver's one retry after an ambiguous send, or the next renewal by any process) must
carry the session on, and only a replay beyond the allowance, of a token whose rotation was
excused, excuses losing the session, or a lost answer whose spent token runs out (its own
refresh lifetime, where sessions end idle) before the SDK may replay it (its timeout and once
more; after a crash, the lease). A replay the IdP allows still breaks I1 unless a rotation
of that token was excused. Faults: connect failures (never sent), resets after
sending (never read by the server), 503 and 429 with ``Retry-After``, 500 after the server
committed, slow answers that time out after the server committed, answers lost to a crash. A
request reaches the server within 0.1 s or never: the SDK waits a full token timeout before it
presents a refresh token again after an ambiguous failure.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import TYPE_CHECKING, Any

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from aiofinaccess.core.errors import TransportError
from aiofinaccess.core.tokens import Secret
from aiofinaccess.oauth.transport import HttpRequest, HttpResponse
from tests.simulation.config import CLIENT_ID, CLIENT_SECRET, CLIENTS

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "Idp", "Rotation", "Session"]

if TYPE_CHECKING:
    from tests.simulation.world import Process, World


@attrs.define
class Rotation:
    """One accepted refresh: ``old`` was spent, ``new`` issued."""

    old: str
    new: str
    process: int
    delivered: bool = False
    durable: bool = False
    excused: str | None = None
    crashed: bool = False  # excused as a crash: others replay only once the lease ran out
    at: float = 0.0  # loop time of the rotation
    durable_at: float | None = None  # and of the write of its successor


@attrs.define
class Session:
    number: int
    user: str
    current: str
    alive: bool = True
    excused: str | None = None  # why losing this session is not the SDK's fault
    rotations: dict[str, Rotation] = attrs.Factory(dict)  # the latest one of each token
    chain: list[str] = attrs.Factory(list)  # every refresh token, oldest first
    # Keycloak's reuse counter: the token used last, and its extra uses so far.
    last_used: str | None = None
    reuses: int = 0
    # Tokens one of whose rotations was excused (its answer lost, or its receiver crashed).
    excused_tokens: set[str] = attrs.Factory(set)
    # Tokens a store rollback brought back or lost (see world.py: the rollback excuse).
    rolled_back: set[str] = attrs.Factory(set)
    # pid -> the tokens of this session it held when the store rolled back.
    rollback_held: dict[int, set[str]] = attrs.Factory(dict)
    idle_until: float = float("inf")
    born: dict[str, float] = attrs.Factory(dict)  # refresh token -> loop time it was issued
    idle_ended: bool = False  # ended idle: its access tokens (JWTs) live on till they expire
    # refresh token -> loop times a presentation of it was turned away unread (503, 429,
    # a failed connect, a reset): the SDK was trying, the IdP was not listening.
    refused: dict[str, list[float]] = attrs.Factory(dict)
    provider: str = "idp"
    client: str = CLIENT_ID  # the client it was issued to: the only one that may renew it
    rotating: bool = True  # finAPI's refresh tokens do not rotate

    @property
    def account(self) -> tuple[str, str]:
        return (self.provider, self.user)

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.user}"


@attrs.define
class Access:
    session: Session
    expires_at: float


def _form(request: HttpRequest) -> dict[str, str]:
    return {
        name: value.reveal() if isinstance(value, Secret) else value for name, value in request.form
    }


def _response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> HttpResponse:
    merged: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json", **(headers or {})})
    return HttpResponse(status, CIMultiDictProxy(merged), json.dumps(body).encode(), None)


class Idp:
    """The identity provider's state and its token endpoint."""

    def __init__(
        self,
        world: World,
        rng: random.Random,
        *,
        access_ttl: float,
        faults: float,
        max_reuse: int = 0,
        refresh_ttl: float = 0.0,
    ):
        self.world = world
        # Keycloak's SSO Session Idle: a session not refreshed for this long ends (0: never).
        self.refresh_ttl = refresh_ttl
        self.max_reuse = max_reuse
        self.reuses = 0
        self.rng = rng
        self.access_ttl = access_ttl
        self.fault_rate = faults
        self.sessions: list[Session] = []
        self.by_refresh: dict[str, Session] = {}
        self.access: dict[str, Access] = {}
        self.counter = 0
        self.requests = 0
        # finAPI's client token of each client: the same one is handed back until it expires.
        self.client_tokens: dict[str, str] = {}
        self.client_token: str | None = None  # the one issued last
        # Passwords of the finAPI-like provider's users (the password grant).
        self.passwords: dict[str, str] = {}
        self.replays: list[str] = []

    def _token(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}-{self.counter}-{self.rng.getrandbits(32):08x}"

    # -- sessions ------------------------------------------------------------------------------

    def login(
        self, user: str, *, provider: str = "idp", client: str = CLIENT_ID, rotating: bool = True
    ) -> tuple[Session, dict[str, Any]]:
        """A new session for ``user`` of ``client`` (the authorization-code flow, done) and its
        token answer.

        Until the app has stored it, losing it is the app's business, not the SDK's.
        """
        refresh = self._token("rt")
        session = Session(
            len(self.sessions),
            user,
            refresh,
            chain=[refresh],
            provider=provider,
            client=client,
            rotating=rotating,
        )
        session.excused = "its login was not stored yet"
        session.born[refresh] = self.world.loop.time()
        self.sessions.append(session)
        self.by_refresh[refresh] = session
        return session, self._answer(session, refresh)

    def _answer(self, session: Session, refresh: str) -> dict[str, Any]:
        access = self._token("at")
        self.access[access] = Access(session, self.world.wall() + self.access_ttl)
        if self.refresh_ttl:
            session.idle_until = self.world.wall() + self.refresh_ttl
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.access_ttl,
            "refresh_expires_in": self.refresh_ttl,
            "token_type": "Bearer",
        }

    def expire_idle(self) -> None:
        """End the sessions idle past their refresh token's lifetime (excused: the SDK renews
        them only while used, or with ``keep_alive``, and never past a crash of every claimant)."""
        # A little early: the SDK counts the lifetime on a process's wall clock (off by up to
        # ``skew``; the reader's and the writer's may differ by twice that) from its send.
        now = self.world.wall() + 0.5 + 2 * self.world.config.skew
        early = self.world.loop.time() + 0.5 + 2 * self.world.config.skew  # the same, loop time
        for session in self.sessions:
            if session.alive and session.idle_until <= now:
                session.alive = False
                session.idle_ended = True
                session.excused = session.excused or "idle past its refresh token's lifetime"
            elif session.alive and session.excused is None and self._refused_to_the_end(session):
                session.excused = "a lost answer's replays were turned away till the token ran out"
            if session.alive and session.excused is None:
                # The stored token may run out while its successor waits in a paused receiver:
                # no reader can tell that from a crash (the same excuse as a replay's).
                for rotation in session.rotations.values():
                    ran_out = session.born.get(rotation.old, early) + self.refresh_ttl <= early
                    if self.refresh_ttl and ran_out and rotation.delivered and not rotation.durable:
                        self._excuse_paused(rotation)

    def _refused_to_the_end(self, session: Session) -> bool:
        """Whether the spent token of a lost answer ran out while the SDK kept presenting it and
        the IdP kept turning it away unread: from when the SDK may first replay it (its timeout
        and once more, or the sender's lease after a crash), no gap longer than one retry (a
        timeout, the longest ``Retry-After`` and a backoff) till its end."""
        if not self.refresh_ttl:
            return False
        config = self.world.config
        now = self.world.loop.time() + 0.5 + 2 * config.skew  # a little early, as above
        first = config.token_timeout + max(config.token_timeout, config.lease_ttl) + 0.5
        gap = config.token_timeout + 2.0 + 1.5
        for rotation in session.rotations.values():
            ends = session.born.get(rotation.old, now) + self.refresh_ttl
            if rotation.excused is None or rotation.durable or ends > now:
                continue
            tries = sorted(t for t in session.refused.get(rotation.old, ()) if t >= rotation.at)
            if (
                tries
                and tries[0] <= rotation.at + first + 2 * config.skew
                and all(b - a <= gap for a, b in zip(tries, [*tries[1:], ends], strict=True))
            ):
                return True
        return False

    def _turned_away(self, form: dict[str, str]) -> None:
        """A request presenting a refresh token was turned away before the server read it."""
        session = self.by_refresh.get(form.get("refresh_token", ""))
        if session is not None:
            times = session.refused.setdefault(form["refresh_token"], [])
            times.append(self.world.loop.time())

    def valid(self, access_token: str) -> tuple[bool, Session | None]:
        """Would the resource server accept ``access_token`` now? (and its session)"""
        access = self.access.get(access_token)
        if access is None:
            return False, None
        session = access.session
        ok = (session.alive or session.idle_ended) and access.expires_at > self.world.wall()
        return ok, access.session

    def stored(self, refresh_token: str | None) -> None:
        """The store now durably holds ``refresh_token``: every rotation before it is durable."""
        session = self.by_refresh.get(refresh_token or "")
        if session is None:
            return
        for token in session.chain:
            if token == refresh_token:
                break
            rotation = session.rotations.get(token)
            if rotation is not None and not rotation.durable:
                rotation.durable = True
                rotation.durable_at = self.world.loop.time()

    def excuse_crash(self, process: int) -> None:
        """``process`` crashed: rotations it received whose successor is not durable are lost.

        One whose answer it had stopped waiting for (excused then, its own replay to come: its
        timeout and once more) is now replayed by others only once its lease runs out, if the
        crash came before that replay (seed 30233: the lease, extended for the replay, ran
        out after the spent token)."""
        now = self.world.loop.time()
        for session in self.sessions:
            for rotation in session.rotations.values():
                if rotation.process != process or rotation.durable:
                    continue
                if not rotation.excused:
                    self._excuse(
                        rotation, f"process {process} crashed before storing it", crash=True
                    )
                elif (
                    not rotation.crashed
                    and session.current == rotation.new  # not replayed since
                    and now < rotation.at + 2 * self.world.config.token_timeout
                ):
                    rotation.crashed = True
                    if self.max_reuse and self._dies_before_replay(session, rotation, crash=True):
                        session.excused = session.excused or (
                            f"{rotation.excused}, its sender crashed before replaying it, "
                            "and it ran out before the lease"
                        )

    # -- the token endpoint ------------------------------------------------------------------------

    async def exchange(self, process: Process, request: HttpRequest) -> HttpResponse:
        process.check_alive()
        self.requests += 1
        roll = self.rng.random()
        fault = None
        if roll < self.fault_rate:
            fault = self.rng.choice(["connect", "reset", "503", "429", "500", "slow", "slow"])
        if fault == "connect":
            await asyncio.sleep(self.rng.uniform(0.001, 0.05))
            self._turned_away(_form(request))
            raise TransportError("cannot connect to the simulated IdP", request_sent=False)
        if fault == "reset":  # sent, then the connection died before the server read it
            await asyncio.sleep(self.rng.uniform(0.001, 0.05))
            self._turned_away(_form(request))
            raise TransportError("connection reset by the simulated IdP", request_sent=True)
        answer: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        self.world.message(self._serve(process, request, fault, answer), answer)
        return await answer

    def _latency(self, fault: str | None, *, answer: bool) -> float:
        """One way. A request reaches the server quickly or not at all (the model's promise to
        the SDK: nothing arrives a token timeout after it was sent); an answer may be slow,
        past the client's timeout, after the server committed."""
        if not answer:
            return self.rng.uniform(0.002, 0.1)
        if fault == "slow":
            return self.rng.uniform(1.0, 6.0)
        return (
            self.rng.uniform(0.005, 0.3) if self.rng.random() < 0.9 else self.rng.uniform(0.3, 1.5)
        )

    async def _serve(
        self,
        process: Process,
        request: HttpRequest,
        fault: str | None,
        answer: asyncio.Future[HttpResponse],
    ) -> None:
        await asyncio.sleep(self._latency(fault, answer=False))
        form = _form(request)
        rotation: Rotation | None = None
        if fault == "503":
            self._turned_away(form)
            response = _response(503, {"error": "temporarily_unavailable"}, {"Retry-After": "1"})
        elif fault == "429":
            self._turned_away(form)
            response = _response(429, {"error": "slow_down"}, {"Retry-After": "2"})
        elif request.url.path.endswith(("/revoke", "/logout")):
            what = "revocation" if request.url.path.endswith("/revoke") else "logout"
            response = self._end_session(form, what)
        else:
            response, rotation = self._grant(process, form)
            if fault == "500":
                response = _response(500, {"error": "server_error"})
        if rotation is not None:
            if fault == "500":
                self._excuse(rotation, "the server answered 500 after committing")
            elif answer.done():  # after a crash, others replay only once its lease ran out
                self._excuse(
                    rotation,
                    "its sender stopped waiting before it was answered",
                    crash=not process.alive,
                )
            else:
                committed = rotation
                answer.add_done_callback(
                    lambda future: (
                        future.cancelled()
                        and self._excuse(committed, "its sender stopped waiting for the answer")
                    )
                )
        await asyncio.sleep(self._latency(fault, answer=True))
        if rotation is not None and not process.alive:
            self._excuse(rotation, "its sender crashed before the answer arrived", crash=True)
        if not answer.done() and process.alive:
            if rotation is not None and fault != "500":
                rotation.delivered = True
            answer.set_result(response)

    def _client_credentials(self, client_id: str) -> HttpResponse:
        now = self.world.wall()
        token = self.client_tokens.get(client_id, "")
        current = self.access.get(token)
        # Within its last second a new token is issued: a reissue there would have to say
        # "expires_in: 0", which finAPI uses for "never".
        if current is None or current.expires_at - now < 1.0 or not current.session.alive:
            token = self.client_tokens[client_id] = self._token("ct")
            client = Session(-1, "(client)", "", chain=[], client=client_id)
            current = self.access[token] = Access(client, now + self.access_ttl)
        self.client_token = token
        remaining = int(current.expires_at - now)  # whole seconds, rounded down, as finAPI sends
        return _response(
            200, {"access_token": token, "token_type": "bearer", "expires_in": remaining}
        )

    def revoke_client_token(self) -> None:
        """The API stops honouring the client token (a restart, a key rotation): a 401 next."""
        current = self.access.get(self.client_token or "")
        if current is not None:
            current.session.alive = False

    def _end_session(self, form: dict[str, str], what: str) -> HttpResponse:
        """RFC 7009 revocation or Keycloak's back-channel logout: the session behind the token
        ends (the app asked for it, so losing it is excused)."""
        if CLIENTS.get(form.get("client_id", "")) != form.get("client_secret"):
            return _response(401, {"error": "invalid_client"})
        token = form.get("token") or form.get("refresh_token") or ""
        session = self.by_refresh.get(token)
        if session is None and token in self.access:
            session = self.access[token].session
        if session is not None and session.client != form.get("client_id"):
            self.world.violation(
                f"I8: a {what} of {session.label}'s session (client {session.client}) "
                f"with the credentials of {form.get('client_id')}"
            )
        elif session is not None:
            session.alive = False
            if session.excused in (None, "its login was not stored yet"):  # the login's
                session.excused = f"the app asked for its {what}"  # write may land later
        return _response(200, {})

    def _excuse(self, rotation: Rotation, why: str, *, crash: bool = False) -> bool:
        """Excuse replaying ``rotation.old``: its answer was lost (``crash``: with its
        receiver, whose lease must run out before anyone replays)."""
        if rotation.excused is None:
            rotation.excused = why
            rotation.crashed = crash
            session = self.by_refresh[rotation.new]
            session.excused_tokens.add(rotation.old)
            if not self.max_reuse:  # else only a replay beyond the allowance excuses a loss
                session.excused = session.excused or why
            elif self._dies_before_replay(session, rotation, crash=crash):
                session.excused = session.excused or f"{why}, and it ran out before a replay"
        return True

    def _dies_before_replay(self, session: Session, rotation: Rotation, *, crash: bool) -> bool:
        """Whether the spent token runs out (its own refresh lifetime) before the SDK may
        replay it: the sender waits out its timeout and once more (the first request may still
        be on its way); after a crash, others wait for the lease to run out."""
        born = session.born.get(rotation.old)
        if not self.refresh_ttl or born is None:
            return False
        config = self.world.config
        wait = config.token_timeout + (config.lease_ttl if crash else config.token_timeout)
        # A little early: the SDK counts the lifetime from its send, on its own wall clock.
        return born + self.refresh_ttl < rotation.at + wait + 0.5 + 2 * config.skew

    def _grant(
        self, process: Process, form: dict[str, str]
    ) -> tuple[HttpResponse, Rotation | None]:
        client_id = form.get("client_id", "")
        if client_id not in CLIENTS or form.get("client_secret") != CLIENTS[client_id]:
            return _response(401, {"error": "invalid_client"}), None
        if form.get("grant_type") == "client_credentials":
            return self._client_credentials(client_id), None
        if form.get("grant_type") == "password":
            return self._password(client_id, form), None
        if form.get("grant_type") != "refresh_token":
            return _response(400, {"error": "unsupported_grant_type"}), None
        presented = form.get("refresh_token", "")
        session = self.by_refresh.get(presented)
        if session is None:
            return _response(
                400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            ), None
        self.expire_idle()
        if session.client != client_id:
            self.world.violation(
                f"I8: pid {process.pid} renewed {session.label}'s set of {session.provider} "
                f"(client {session.client}) with the credentials of {client_id}"
            )
            return _response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Token client and authorized client don't match",
                },
            ), None
        if not session.alive:
            return _response(
                400, {"error": "invalid_grant", "error_description": "Session not active"}
            ), None
        if not session.rotating:  # finAPI: the same refresh token, a new access token
            return _response(200, self._answer(session, presented)), None
        return self._rotate(process, session, presented)

    def _rotate(
        self, process: Process, session: Session, presented: str
    ) -> tuple[HttpResponse, Rotation | None]:
        """Keycloak's refresh: rotate the current token; a replay kills the session."""
        if (
            presented != session.current
            and presented in session.rolled_back
            and presented not in session.excused_tokens
            and not self.world.holds_newer(process, session, presented)
        ):  # the store handed it out again, and this process holds nothing newer
            session.excused_tokens.add(presented)
            if not self.max_reuse:
                session.excused = session.excused or "the store rolled back its successor"
        self._excuse_paused(session.rotations.get(presented))
        excused = presented in session.excused_tokens
        if presented == session.current:
            session.last_used, session.reuses = presented, 0
        elif presented == session.last_used and session.reuses < self.max_reuse:
            session.reuses += 1  # Keycloak allows it: a lost answer retried
            self.reuses += 1
            self.world.log(f"IdP: {presented} of {session.label} reused by pid {process.pid}")
            if not excused:
                self._unexcused_replay(process, session, presented)
        else:
            session.alive = False  # Keycloak: a replay kills the whole session
            self.world.log(f"IdP: {presented} of {session.label} replayed by pid {process.pid}")
            if not excused:
                self._unexcused_replay(process, session, presented)
            elif self.max_reuse:
                session.excused = session.excused or "a twice-lost answer, replayed again"
            return _response(
                400, {"error": "invalid_grant", "error_description": "Stale token"}
            ), None
        earlier = session.rotations.get(presented)
        if earlier is not None and excused:  # an excused reuse forks the chain: the token the
            session.excused_tokens.add(earlier.new)  # earlier answer issued is dead now
        new = self._token("rt")
        rotation = Rotation(presented, new, process.pid, at=self.world.loop.time())
        session.rotations[presented] = rotation
        if self.world.verbose:
            self.world.log(f"IdP: pid {process.pid} rotates {presented} of {session.label}")
        session.current = new
        self.world.traffic.renewal(session, presented)
        session.born[new] = self.world.loop.time()
        session.chain.append(new)
        self.by_refresh[new] = session
        return _response(200, self._answer(session, new)), rotation

    def _password(self, client_id: str, form: dict[str, str]) -> HttpResponse:
        """finAPI's password grant: a new session (refresh token) for a user of ``client_id``."""
        user = form.get("username", "")
        if user not in self.passwords or self.passwords[user] != form.get("password"):
            return _response(400, {"error": "invalid_grant", "error_description": "Bad user"})
        session, body = self.login(user, provider="fin", client=client_id, rotating=False)
        session.excused = None  # the SDK obtained it: it must keep it
        return _response(200, body)

    def _excuse_paused(self, rotation: Rotation | None) -> None:
        """A pause of the receiver between the answer and its write, longer than the lease's
        margin, is outside the model (no client can close it: see core/fencing.py)."""
        if rotation is None or rotation.excused:
            return
        receiver = self.world.processes[rotation.process - 1]
        paused = receiver.clock.paused_between(rotation.at, rotation.durable_at)
        if paused > self.world.config.lease_ttl / 4:
            self._excuse(rotation, "its receiver paused before storing it", crash=True)

    def _unexcused_replay(self, process: Process, session: Session, presented: str) -> None:
        rotation = session.rotations.get(presented)
        how = (
            "it was never rotated"
            if rotation is None
            else f"its rotation (by pid {rotation.process}, delivered={rotation.delivered}, "
            f"durable={rotation.durable}) had no excuse"
        )
        self.world.violation(
            f"I1: refresh token {presented} of {session.label} replayed by pid {process.pid}; {how}"
        )
