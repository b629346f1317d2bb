"""An aiohttp client middleware that lets any ``ClientSession`` use a session manager.

>>> auth = BearerAuth(manager, "everifin", subject="user-42")  # doctest: +SKIP
>>> async with aiohttp.ClientSession(middlewares=(auth,)) as session:  # doctest: +SKIP
...     async with session.get(url) as response:
...         ...

On a 401 it asks the manager once for a token other than the refused one (one shared renewal)
and replays once. The token goes only to the provider's API origins, on the first request and
on every redirect hop (aiohttp runs middlewares again for each); to trust one more origin:
``attrs.evolve(provider, extra_api_origins=("https://files.example.com",))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from ..core.errors import ConfigurationError
from ..oauth.providers import Origin, Provider, origin_of

if TYPE_CHECKING:
    from ..session.manager import SessionManager

__all__ = ["BearerAuth"]


class BearerAuth:
    """Adds ``Authorization: Bearer`` for one token set and recovers once from a 401.

    Args:
        manager: The session manager that owns the token set.
        provider: The provider (or its name).
        subject: The end user's id, or ``None`` for the client's own token.
    """

    __slots__ = ("_manager", "_origins", "_provider", "_subject")

    def __init__(
        self, manager: SessionManager, provider: Provider | str, subject: str | None = None
    ) -> None:
        self._manager: Final = manager
        self._provider: Final = provider if isinstance(provider, str) else provider.name
        self._subject: Final = subject
        manager.key(self._provider, subject)  # fail now, not at the first request
        self._origins: Final[frozenset[Origin]] = manager.provider(self._provider).api_origins()
        if not self._origins:
            raise ConfigurationError(
                f"provider {self._provider} has no API origin to send bearer tokens to: "
                "give it an api_url (or extra_api_origins)"
            )

    def __repr__(self) -> str:
        who = "client" if self._subject is None else "user"
        return f"BearerAuth(provider={self._provider!r}, token_set={who})"

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        if origin_of(request.url) not in self._origins:
            return await handler(request)  # another site, or a redirect hop off the API
        token = await self._manager.access_token(self._provider, self._subject)
        request.headers[aiohttp.hdrs.AUTHORIZATION] = f"Bearer {token}"
        response = await handler(request)
        if response.status != 401:
            return response
        response.release()
        token = await self._manager.renew_after_rejection(self._provider, self._subject, token)
        request.headers[aiohttp.hdrs.AUTHORIZATION] = f"Bearer {token}"
        return await handler(request)
