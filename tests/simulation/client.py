"""The SDK's own OAuth client (request building, parsing, error mapping), sending to the
simulated IdP instead of the network: where a process may pause, and the fence's last check."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiofinaccess.core.errors import TransportError
from aiofinaccess.core.fencing import check_before_send
from aiofinaccess.core.tokens import Secret, TokenSet
from aiofinaccess.oauth.client import (
    OAuthClient,
    _raise_unless_ok,
    build_token_request,
    parse_token_http_response,
)
from aiofinaccess.oauth.transport import HttpRequest

if TYPE_CHECKING:
    from tests.simulation.process import Process
    from tests.simulation.world import World


class SimOAuthClient(OAuthClient):
    """The SDK's OAuth client (request building, parsing, error mapping), sending to the IdP."""

    def __init__(self, world: World, process: Process, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._world = world
        self._process = process

    async def _token(
        self, grant_type: str, fields: Iterable[tuple[str, str | Secret | None]]
    ) -> TokenSet:
        request = build_token_request(self.provider, self.client, grant_type, fields)
        self._process.pause_at_send()
        await self._process.clock.frozen()  # a pause after the fence, before its last check
        sent = self._world.anchor(self._process)
        check_before_send()  # as the SDK's transport does, where the request goes out
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._world.idp.exchange(self._process, request)
        except TimeoutError:
            raise TransportError("the token request timed out", request_sent=True) from None
        return parse_token_http_response(self.provider, response, sent=sent)

    async def _expect_success(self, request: HttpRequest, what: str) -> None:
        await self._process.clock.frozen()
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._world.idp.exchange(self._process, request)
        except TimeoutError:
            raise TransportError(f"the {what} request timed out", request_sent=True) from None
        _raise_unless_ok(response, what)
