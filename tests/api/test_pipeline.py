"""Tests for aiofinaccess.api.pipeline against a real local server: auth, retries, ids, timeouts."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess import ClientCredentials, Oidc, RetryPolicy, Schedule, SessionManager, TokenSet
from aiofinaccess.api.pipeline import (
    ApiClient,
    Endpoint,
    EndUser,
    everifin_context,
    finapi_context,
)
from aiofinaccess.core.errors import (
    AuthenticationError,
    ServerError,
    TransportError,
    ValidationError,
)

GET = Endpoint("GET", "/items/{item_id}")
POST = Endpoint("POST", "/items", expect=(201,))


class Api:
    """A resource server whose behaviour each test scripts."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.request_ids: list[str] = []
        self.failures: list[int] = []  # statuses to answer before succeeding
        self.valid_tokens = {"AT-1"}
        self.tokens_issued = 0
        self.delay = 0.0
        self.reject_all = False

    async def token(self, request: web.Request) -> web.Response:
        self.tokens_issued += 1
        token = f"AT-{self.tokens_issued + 1}"
        self.valid_tokens = {token}
        return web.json_response(
            {"access_token": token, "expires_in": 300, "refresh_token": f"RT-{token}"}
        )

    async def item(self, request: web.Request) -> web.Response:
        self.calls[request.method] += 1
        self.request_ids.append(request.headers["X-Request-Id"])
        await asyncio.sleep(self.delay)
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.reject_all or bearer not in self.valid_tokens:
            return web.json_response({"error": "invalid_token"}, status=401)
        if self.failures:
            status = self.failures.pop(0)
            return web.json_response(
                {"errors": [{"code": "UNEXPECTED_ERROR"}]},
                status=status,
                headers={"Retry-After": "0"},
            )
        return web.json_response(
            {"id": request.match_info.get("item_id", "new")},
            status=201 if request.method == "POST" else 200,
        )


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, TestServer]]:
    api = Api()
    app = web.Application()
    app.router.add_post("/token", api.token)
    app.router.add_get("/items/{item_id}", api.item)
    app.router.add_post("/items", api.item)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield api, server
    await server.close()


@pytest.fixture
async def client(api: tuple[Api, TestServer]) -> AsyncIterator[ApiClient]:
    _, server = api
    base = str(server.make_url("")).rstrip("/")
    async with SessionManager(schedule=Schedule(enabled=False)) as manager:
        manager.register(
            Oidc.endpoints(name="api", token_url=base + "/token", api_url=base),
            ClientCredentials("c", "s"),
        )
        now = time.time()
        await manager.store_token_set(
            "api",
            "u",
            TokenSet(
                access_token="AT-1", refresh_token="RT-0", issued_at=now, expires_at=now + 300
            ),
        )
        yield ApiClient(
            manager,
            "api",
            context_headers=finapi_context,
            retry=RetryPolicy(initial=0.001, max_wait=0.01),
        )


async def test_a_401_renews_once_and_replays(
    api: tuple[Api, TestServer], client: ApiClient
) -> None:
    """The refused token is replaced through the manager; the call succeeds on the replay."""
    server_api, _ = api
    server_api.valid_tokens = set()  # AT-1 is refused; the token endpoint issues AT-2 next
    response = await client.call(GET, subject="u", path_params={"item_id": "a b/c"})
    assert response.status == 200
    assert response.json() == {"id": "a b/c"}
    assert server_api.tokens_issued == 1
    assert server_api.calls["GET"] == 2


async def test_a_second_401_is_an_authentication_error(
    api: tuple[Api, TestServer], client: ApiClient
) -> None:
    """Two rounds at most: a token refused again is reported, not renewed in a loop."""
    server_api, _ = api
    server_api.reject_all = True
    with pytest.raises(AuthenticationError) as info:
        await client.call(GET, subject="u", path_params={"item_id": "1"})
    assert info.value.request_id in server_api.request_ids
    assert server_api.calls["GET"] == 2
    assert server_api.tokens_issued == 1


async def test_5xx_is_retried_for_get_not_for_post(
    api: tuple[Api, TestServer], client: ApiClient
) -> None:
    """Idempotent methods are replayed after a 503; a POST is not."""
    server_api, _ = api
    server_api.failures = [503, 502]
    assert (await client.call(GET, subject="u", path_params={"item_id": "1"})).status == 200
    assert server_api.calls["GET"] == 3
    server_api.failures = [503]
    with pytest.raises(ServerError):
        await client.call(POST, subject="u", json={"name": "x"})
    assert server_api.calls["POST"] == 1


async def test_429_is_retried_even_for_post(api: tuple[Api, TestServer], client: ApiClient) -> None:
    """A rate-limited request was not processed: replaying it is safe."""
    server_api, _ = api
    server_api.failures = [429]
    assert (await client.call(POST, subject="u", json={})).status == 201
    assert server_api.calls["POST"] == 2


async def test_each_request_has_its_own_id_and_context(
    api: tuple[Api, TestServer], client: ApiClient
) -> None:
    """X-Request-Id per attempt, end-user headers passed through."""
    server_api, _ = api
    server_api.failures = [500]
    await client.call(
        GET, subject="u", path_params={"item_id": "1"}, end_user=EndUser(ip_address="192.0.2.1")
    )
    assert len(server_api.request_ids) == 2
    assert (
        len(set(server_api.request_ids)) == 1
    )  # one logical request: one id, quoted on every attempt


async def test_per_call_timeout(api: tuple[Api, TestServer], client: ApiClient) -> None:
    """A slow answer past the call's timeout is a TransportError (after retries for a GET)."""
    server_api, _ = api
    server_api.delay = 0.5
    with pytest.raises(TransportError) as info:
        await client.call(GET, subject="u", path_params={"item_id": "1"}, timeout=0.05)
    assert info.value.request_sent is True


@pytest.mark.parametrize(
    "fields",
    [
        {"ip_address": "not-an-ip"},
        {"ip_address": "0.0.0.0"},  # noqa: S104
        {"ip_address": "224.0.0.1"},
        {"ip_address": "203.0.113.5\r\nX-Evil: 1"},
        {"user_agent": "Firefox\r\nAuthorization: Bearer stolen"},
        {"user_agent": "x" * 10_000},
        {"device_os": "Linux\x00"},
        {"user_agent": 42},
    ],
)
def test_an_end_user_is_checked_when_made_for_every_provider(fields: dict[str, object]) -> None:
    """What an app copies from its own request into an EndUser (finAPI's PSU headers,
    Everifin's ``client-ip-address`` and Paygate's sender headers alike) is refused as a
    ValidationError when made, never sent and never echoed."""
    with pytest.raises(ValidationError) as refused:
        EndUser(**fields)  # type: ignore[arg-type]
    assert "stolen" not in str(refused.value)
    assert len(str(refused.value)) < 200


def test_an_end_user_with_real_values_builds_each_providers_headers() -> None:
    user = EndUser(ip_address="2001:db8::1", user_agent="Mozilla/5.0 (X11)", device_os="Linux")
    assert dict(everifin_context(user)) == {
        "User-Agent": "Mozilla/5.0 (X11)",
        "client-ip-address": "2001:db8::1",
    }
    assert dict(finapi_context(user))["PSU-IP-Address"] == "2001:db8::1"
