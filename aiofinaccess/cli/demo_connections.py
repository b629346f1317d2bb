"""The demo's connection steps: a bank connection's consent and an Everifin login, months on.

The demo's clock is the sandbox's (:class:`SandboxTime`), so when a step moves it forward the
bank's consents and sessions and the app's tokens and connection registry age together.
finAPI: the consent nears its end and ``manager.connections``' sweep announces it; once it
lapsed, a background update needs the user and the registry lists the connection with the
form's link; the user renews the consent in the form (headless) and the connection is repaired.
Everifin: the login nears the realm's SSO Session Max, the sweep and ``session_state`` say so,
and a re-login (headless) opens a fresh session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import aiohttp

from ..api.everifin.session_state import SessionStatus, session_state
from ..api.finapi.consent import connection_state
from ..api.finapi.data import FinApiData
from ..api.finapi.task_models import BackgroundUpdate, UpdateCompleted, WebFormRequired
from ..api.finapi.tasks import ConnectionUpdates
from ..core.connections import ConnectionState, Observation
from ..core.tokens import TokenSet
from ..sandbox import Sandbox, headless_login, headless_web_form
from ..session.connection_events import (
    ConnectionEvent,
    ConnectionExpiring,
    ConnectionInfo,
    ConnectionRepaired,
    ReconnectRequired,
)
from ..session.manager import SessionManager

__all__ = ["SESSION_MAX", "SandboxTime", "everifin_session_steps", "finapi_connection_steps"]

_T = TypeVar("_T")
_E = TypeVar("_E", bound=ConnectionEvent)
_DAY = 86400.0
#: The demo realm's SSO Session Max (and Idle): a login lasts 90 days at most.
SESSION_MAX = 90 * _DAY


class Steps(Protocol):
    async def run(
        self, title: str, action: Callable[[], Awaitable[_T]], show: Callable[[_T], str]
    ) -> _T | None: ...


class SandboxTime:
    """The sandbox's clock as the app's (wall and monotonic move forward with it)."""

    __slots__ = ("_sandbox",)

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def wall(self) -> float:
        """UNIX seconds on the sandbox clock."""
        return float(self._sandbox.state.clock.now())

    def monotonic(self) -> float:
        """Monotonic seconds, plus how far the sandbox clock was moved."""
        return time.monotonic() + float(self._sandbox.state.clock.offset)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the event loop."""
        await asyncio.sleep(seconds)


class _Inbox:
    """The registry's events, as the app's subscriber receives them."""

    def __init__(self, manager: SessionManager) -> None:
        self.events: list[ConnectionEvent] = []
        self.close = manager.connections.subscribe(self.events.append)

    def take(self, kind: type[_E]) -> _E:
        """The one event received since the last take, which must be a ``kind``."""
        found = self.events[:]
        self.events.clear()  # the subscription appends to this very list
        if len(found) != 1 or not isinstance(found[0], kind):
            raise AssertionError(f"expected one {kind.__name__}, received {found}")
        return found[0]


def _now(manager: SessionManager) -> dt.datetime:
    return dt.datetime.fromtimestamp(manager.clock.wall(), dt.UTC)


async def _observe(
    manager: SessionManager, user: str, connection_id: int, link: str | None = None
) -> ConnectionInfo:
    """Read the connection at finAPI and record it (with ``link``: the form it waits for)."""
    data = FinApiData(manager)

    async def read() -> Observation:
        connection = await data.bank_connection(user, connection_id)
        seen = connection_state(connection, _now(manager)).observation()
        if link is None:
            return seen
        blocked = seen.blocked or ConnectionState.ACTION_REQUIRED
        return Observation(expires_at=seen.expires_at, blocked=blocked, detail=link)

    return await manager.connections.observe("finapi", user, str(connection_id), read)


async def finapi_connection_steps(
    manager: SessionManager, steps: Steps, sandbox: Sandbox, user: str, connection_id: int
) -> None:
    """Run the finAPI steps for ``user``'s bank connection ``connection_id``."""
    inbox = _Inbox(manager)
    try:
        await _finapi(manager, steps, sandbox, user, connection_id, inbox=inbox)
    finally:
        inbox.close()


async def _finapi(
    manager: SessionManager,
    steps: Steps,
    sandbox: Sandbox,
    user: str,
    connection_id: int,
    *,
    inbox: _Inbox,
) -> None:
    consent_days = sandbox.config.finapi_consent_days

    async def expiring() -> ConnectionExpiring:
        recorded = await _observe(manager, user, connection_id)
        if recorded.state is not ConnectionState.ACTIVE:
            raise AssertionError(f"the new connection is {recorded.state}")
        sandbox.advance((consent_days - 6) * _DAY)
        await manager.connections.sweep()
        return inbox.take(ConnectionExpiring)

    await steps.run(
        f"{consent_days - 6:.0f} days on: the sweep announces the end",
        expiring,
        lambda e: f"ConnectionExpiring, lead {e.lead.days} days, event {e.event_id}",
    )
    updates = ConnectionUpdates(manager)

    async def lapsed() -> tuple[WebFormRequired, ReconnectRequired]:
        sandbox.advance(7 * _DAY)
        update = BackgroundUpdate(connection_id)
        outcome = await updates.update(user, update, poll_interval=0.1, timeout=5)
        if not isinstance(outcome, WebFormRequired) or outcome.task is None:
            raise AssertionError(f"the update ended in {outcome}")
        await _observe(manager, user, connection_id, outcome.url)
        event = inbox.take(ReconnectRequired)
        waiting = await manager.connections.list(needs_action=True, provider="finapi")
        if [row.detail for row in waiting] != [outcome.url]:
            raise AssertionError(f"the registry lists {waiting}")
        return outcome, event

    needs = await steps.run(
        "consent lapsed: the update needs the user",
        lapsed,
        lambda found: (
            f"{found[0].task and found[0].task.status} -> ReconnectRequired {found[1].state}, "
            f"episode {found[1].episode}, listed with form {found[0].web_form.id[:8]}..."
        ),
    )
    if needs is None:
        return
    form = needs[0]

    async def repaired() -> tuple[ConnectionRepaired, ConnectionInfo]:
        async with aiohttp.ClientSession() as browser:
            await headless_web_form(browser, form.url)
        assert form.task is not None  # noqa: S101  (checked in the step before)
        done = await updates.wait(
            user, form.task.id, through_web_form=True, poll_interval=0.1, timeout=5
        )
        if not isinstance(done, UpdateCompleted):
            raise AssertionError(f"the update ended in {done}")
        info = await _observe(manager, user, connection_id)
        return inbox.take(ConnectionRepaired), info

    await steps.run(
        "the user renews the consent (headless form)",
        repaired,
        lambda found: (
            f"ConnectionRepaired, episode {found[0].episode}, "
            f"{found[1].state} until {found[1].expires_at:%Y-%m-%d}"
        ),
    )


async def everifin_session_steps(
    manager: SessionManager, steps: Steps, sandbox: Sandbox, user: str, login: TokenSet
) -> TokenSet | None:
    """Run the Everifin steps for ``user``, logged in with ``login``; the fresh session's set."""
    inbox = _Inbox(manager)
    try:
        return await _everifin(manager, steps, sandbox, user, login, inbox=inbox)
    finally:
        inbox.close()


async def _everifin(
    manager: SessionManager,
    steps: Steps,
    sandbox: Sandbox,
    user: str,
    login: TokenSet,
    *,
    inbox: _Inbox,
) -> TokenSet | None:
    session_max = manager.provider("everifin").session_max

    async def nearing() -> tuple[ConnectionExpiring, SessionStatus]:
        sandbox.advance(SESSION_MAX - 0.5 * _DAY)
        await manager.connections.sweep()
        event = inbox.take(ConnectionExpiring)
        status = session_state(
            login, _now(manager), session_max=session_max, started_at=login.issued_at
        )
        if status.state is not ConnectionState.EXPIRING:
            raise AssertionError(f"session_state says {status.state}")
        return event, status

    await steps.run(
        f"{SESSION_MAX / _DAY - 0.5:g} days on: the login nears Session Max",
        nearing,
        lambda found: (
            f"ConnectionExpiring, lead {found[0].lead.days} day; session_state "
            f"{found[1].state} (ends {found[1].ends_at:%Y-%m-%d %H:%M})"
        ),
    )

    async def relogin() -> TokenSet:
        request = manager.authorization_request("everifin", "http://127.0.0.1/callback")
        password = sandbox.config.everifin_users[user]
        async with aiohttp.ClientSession() as browser:
            callback = await headless_login(browser, request.url, user, password)
        fresh = await manager.complete_authorization("everifin", user, str(callback), request)
        status = session_state(
            fresh, _now(manager), session_max=session_max, started_at=fresh.issued_at
        )
        if status.state is not ConnectionState.ACTIVE or fresh.refresh_token == login.refresh_token:
            raise AssertionError(f"the new login is {status.state}")
        return fresh

    return await steps.run(
        "re-login (headless): a fresh session",
        relogin,
        lambda fresh: (
            f"refresh token #{fresh.refresh_token and fresh.refresh_token.fingerprint()[:8]}, "
            f"ACTIVE for {SESSION_MAX / _DAY:g} days"
        ),
    )
