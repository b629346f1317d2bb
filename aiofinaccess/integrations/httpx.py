"""An ``httpx.Auth`` backed by a session manager (extra ``httpx``; ``httpx.AsyncClient`` only).

>>> auth = HttpxAuth(manager, "everifin", subject="user-42")  # doctest: +SKIP
>>> async with httpx.AsyncClient(auth=auth, base_url=api) as client:  # doctest: +SKIP
...     accounts = (await client.get("/v1/accounts")).json()

As :class:`~aiofinaccess.integrations.middleware.BearerAuth`: one shared renewal when the token
expired, one renewal and one replay on a 401, and the token only to the provider's API origins
(:meth:`~aiofinaccess.oauth.providers.Provider.api_origins`) and those the app adds here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Generator, Iterable

import httpx
from yarl import URL

from ..core.errors import ConfigurationError, UsageError
from ..oauth.providers import Provider, origin_of
from ..session.manager import SessionManager

__all__ = ["HttpxAuth"]

logger = logging.getLogger("aiofinaccess")


class HttpxAuth(httpx.Auth):
    """Bearer auth for one token set on an ``httpx.AsyncClient``.

    Args:
        manager: The session manager that owns the token set.
        provider: The provider (or its name).
        subject: The end user's id, or ``None`` for the client's own token.
        trusted_origins: More origins (``https://host[:port]``) that may receive the token,
            besides the provider's API origins.

    Raises:
        UsageError: The provider is not registered.
        ConfigurationError: A trusted origin is not an ``http(s)`` URL, or there is no
            origin to send the token to.
    """

    # The body is read before the first send, so a replay after a 401 sends it again.
    requires_request_body = True

    def __init__(
        self,
        manager: SessionManager,
        provider: Provider | str,
        subject: str | None = None,
        *,
        trusted_origins: Iterable[str] = (),
    ) -> None:
        self._manager = manager
        self._provider = manager.key(provider, subject).provider
        self._subject = subject
        origins = set(manager.provider(self._provider).api_origins())
        for url in trusted_origins:
            origin = origin_of(URL(url))
            if origin is None:
                raise ConfigurationError(f"trusted origin {url!r} is not an http(s) URL")
            origins.add(origin)
        if not origins:
            raise ConfigurationError(
                f"provider {self._provider} has no API origin to send bearer tokens to: "
                "give it an api_url, or pass trusted_origins"
            )
        self._origins = frozenset(origins)

    def __repr__(self) -> str:
        who = "client" if self._subject is None else "user"
        return f"HttpxAuth(provider={self._provider!r}, token_set={who})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Refused: use ``httpx.AsyncClient``."""
        raise UsageError("HttpxAuth works with httpx.AsyncClient only (the manager is async)")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send with the bearer token; after a 401, renew once and replay once."""
        if origin_of(URL(str(request.url))) not in self._origins:
            logger.debug("no token for %s: not an origin of %s", request.url.host, self._provider)
            yield request
            return
        token = await self._manager.access_token(self._provider, self._subject)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        token = await self._manager.renew_after_rejection(self._provider, self._subject, token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
