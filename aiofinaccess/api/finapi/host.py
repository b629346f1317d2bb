"""finAPI's Web Form 2.0 host: the API client for it, and polling a resource there until done.

The Web Form host is a separate service from finAPI Access (its own URL,
:attr:`~aiofinaccess.oauth.providers.Provider.web_form_url`), taking the same user tokens. Its
forms and tasks are polled at most once a second (finAPI's request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from ...core.errors import ConfigurationError, ValidationError
from ..pipeline import ApiClient, finapi_context

if TYPE_CHECKING:
    from ...core.clock import Clock
    from ...session.manager import SessionManager

__all__ = ["poll_until", "web_form_client"]

_T = TypeVar("_T")


def web_form_client(manager: SessionManager, provider: str, timeout: float) -> ApiClient:
    """An API client for the Web Form host of ``provider``.

    Raises:
        ConfigurationError: The provider has no Web Form host.
    """
    web_form_url = manager.provider(provider).web_form_url
    if web_form_url is None:
        raise ConfigurationError(f"provider {provider} has no web_form_url")
    return ApiClient(
        manager, provider, base_url=web_form_url, context_headers=finapi_context, timeout=timeout
    )


async def poll_until(
    fetch: Callable[[], Awaitable[_T]],
    done: Callable[[_T], bool],
    clock: Clock,
    *,
    poll_interval: float,
    timeout: float,
    late: Callable[[_T], str],
) -> _T:
    """``fetch`` every ``poll_interval`` seconds (on ``clock``) until ``done``; the last value.

    Raises:
        TimeoutError: Not done within ``timeout`` (the message is ``late`` of the last value).
        ValidationError: ``poll_interval`` is not positive.
    """
    if poll_interval <= 0:
        raise ValidationError("poll_interval must be more than 0 seconds")
    deadline = clock.monotonic() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise TimeoutError(late(value))
        await clock.sleep(min(poll_interval, remaining))
