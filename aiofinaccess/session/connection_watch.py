"""What the token path tells the connection registry: a login opens (or repairs) the user's
connection, a dead grant breaks it.

The token set's own connection has the id ``""``. A login records its end when the provider
preset knows the login's maximum (:attr:`~aiofinaccess.oauth.providers.Provider.session_max`);
the refresh token's end is not recorded, since each refresh moves it: when it does run out, the
refresh fails with a dead grant (:class:`~aiofinaccess.session.events.GrantLost`), which this
module turns into a ``ReconnectRequired`` for the fleet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..core.errors import StoreError

if TYPE_CHECKING:
    from ..core.connections import Observation
    from ..oauth.providers import Provider
    from .connections import ConnectionRegistry
    from .events import GrantLost, ManagerEvent

__all__ = ["grant_lost", "logged_in", "observe_logins", "tell", "tell_revoked"]

logger = logging.getLogger("aiofinaccess")


def logged_in(provider: Provider, now: float) -> Observation:
    """A login at ``now``: it needs nothing and ends at ``now + session_max`` when known."""
    from ..core.connections import Observation  # noqa: PLC0415  (not on a first token's path)

    if provider.session_max is None:
        return Observation()
    return Observation(expires_at=now + provider.session_max, detail="session_max")


def grant_lost(event: GrantLost) -> Observation:
    """A dead grant: the user must log in again."""
    from ..core.connections import ConnectionState, Observation  # noqa: PLC0415  (as above)

    return Observation(blocked=ConnectionState.EXPIRED, detail=event.reason)


async def tell(
    registry: ConnectionRegistry, provider: str, subject: str, observation: Observation
) -> None:
    """Observe, logging (never raising) a store failure: the token path must not fail on it."""
    try:
        await registry.observe(provider, subject, "", observation)
    except StoreError as exc:
        logger.warning("the connection registry could not record a login: %s", exc)


async def tell_revoked(registry: ConnectionRegistry, provider: str, subject: str) -> None:
    """Turn the user's connections ``REVOKED``, logging (never raising) a store failure: the
    tokens are gone already (``manager.connections.revoke`` can be called again)."""
    try:
        await registry.revoke(provider, subject)
    except StoreError as exc:
        logger.warning("the connection registry could not record a revocation: %s", exc)


def observe_logins(
    registry: Callable[[], ConnectionRegistry | None],
    spawn: Callable[[Coroutine[Any, Any, None]], object],
) -> Callable[[ManagerEvent], None]:
    """A manager event subscriber that records each user's dead grant in the registry."""

    def on_event(event: ManagerEvent) -> None:
        from .events import GrantLost  # noqa: PLC0415  (loaded by whoever built the event)

        if not isinstance(event, GrantLost) or event.subject is None:
            return
        found = registry()
        if found is not None:
            spawn(tell(found, event.provider, event.subject, grant_lost(event)))

    return on_event
