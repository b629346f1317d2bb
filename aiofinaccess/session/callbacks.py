"""The app's callbacks, checked when they are handed over rather than when they first run.

A password lookup may be a plain or an async function (both are awaited the same way). Event
subscribers run synchronously on the event loop, so a coroutine function is refused at
:meth:`~aiofinaccess.session.manager.SessionManager.subscribe` with a message that names the ways to
run async code on events. The re-authorization hook takes both kinds.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigurationError
from ..core.tokens import Secret

if TYPE_CHECKING:
    from .events import GrantLost, ManagerEvent
    from .registry import AsyncPasswordLookup, PasswordLookup

__all__ = ["ReauthCallback", "awaiting", "plain_subscriber", "reauth_subscriber"]

logger = logging.getLogger("aiofinaccess")

#: Told which user must connect again: a plain or an async function of the event.
ReauthCallback = Callable[["GrantLost"], object]


def _is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004  (an object with an async __call__)
    )


def awaiting(lookup: PasswordLookup) -> AsyncPasswordLookup:
    """``lookup`` as an async function, whether it was one or a plain one."""
    if _is_async(lookup):
        return lookup  # type: ignore[return-value]

    async def call(user: str) -> str | Secret | None:
        result = lookup(user)
        if inspect.isawaitable(result):
            return await result
        return result

    return call


def plain_subscriber(callback: object) -> None:
    """Refuse what :meth:`SessionManager.subscribe` cannot run.

    Raises:
        ConfigurationError: ``callback`` is not callable, or is a coroutine function.
    """
    if not callable(callback):
        raise ConfigurationError("subscribe() needs a function of one event")
    if _is_async(callback):
        name = getattr(callback, "__qualname__", type(callback).__name__)
        raise ConfigurationError(
            f"subscribe() calls its callback synchronously, so the coroutine function {name} "
            "would never run: subscribe a plain function, iterate "
            "'async for event in manager.events()', or use manager.on_reauth_required(), "
            "which awaits async callbacks"
        )


def reauth_subscriber(
    callback: ReauthCallback, spawn: Callable[[Coroutine[Any, Any, None]], object]
) -> Callable[[ManagerEvent], None]:
    """An event subscriber that hands :class:`GrantLost` events to ``callback``.

    An async ``callback`` runs in a task started by ``spawn`` (the manager's, so closing the
    manager waits for it); its failure is logged by type and key hash, never by user id.
    """
    if not callable(callback):
        raise ConfigurationError("on_reauth_required() needs a function of one event")
    from .events import GrantLost  # noqa: PLC0415  (the records load with their first listener)

    async def run(awaitable: Awaitable[object], event: GrantLost) -> None:
        try:
            await awaitable
        except Exception as exc:
            logger.warning(
                "re-authorization callback for token set %s failed: %s",
                event.key,
                type(exc).__name__,
            )

    def deliver(event: ManagerEvent) -> None:
        if not isinstance(event, GrantLost):
            return
        result = callback(event)
        if inspect.isawaitable(result):
            spawn(run(result, event))

    return deliver
