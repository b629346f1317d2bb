"""The app's callbacks, checked when they are handed over rather than when they first run.

A password lookup may be a plain or an async function (both are awaited the same way). Event
subscribers run synchronously on the event loop, so a coroutine function is refused at
:meth:`~aiofinaccess.session.manager.SessionManager.subscribe` with a message that names the ways to
run async code on events. The connection registry's
:meth:`~aiofinaccess.session.connections.ConnectionRegistry.subscribe` takes both kinds.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING

from ..core.errors import ConfigurationError
from ..core.tokens import Secret

if TYPE_CHECKING:
    from .registry import AsyncPasswordLookup, PasswordLookup

__all__ = ["awaiting", "plain_subscriber"]

logger = logging.getLogger("aiofinaccess")


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
            "'async for event in manager.events()', or use manager.connections.subscribe(), "
            "which awaits async callbacks"
        )
