"""Forged finAPI callbacks over a real aiohttp server: ids that are dot segments are typed
400s (not a 500 from deep in the read-back), and a user synchronization's answer does not
tell whoever posts it whether finAPI knows a user id (ids are often e-mail addresses)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from aiofinaccess import SessionManager
from aiofinaccess.integrations.finapi_callbacks import FinApiCallbacks, WebCallbacks
from tests.support.finapi_journey import import_connection

USER = "forged-user"


@pytest.fixture
async def hooks(sandbox_manager: SessionManager) -> AsyncIterator[str]:
    """The app's callback routes on loopback; their URL."""
    server = web.Application()
    receiver = FinApiCallbacks(sandbox_manager, base_url="http://127.0.0.1:1/hooks")
    WebCallbacks(receiver, path="/hooks").setup(server)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    finally:
        await runner.cleanup()


async def post(url: str, body: dict[str, object]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, data=json.dumps(body)) as response:
        return response.status, await response.text()


@pytest.mark.parametrize(
    ("kind", "field"), [("task", "taskId"), ("web-form", "webFormId")], ids=["task", "web-form"]
)
@pytest.mark.parametrize("dots", [".", ".."])
async def test_an_id_that_is_a_dot_segment_is_a_typed_400(
    sandbox_manager: SessionManager, hooks: str, kind: str, field: str, dots: str
) -> None:
    await import_connection(sandbox_manager, USER)  # a user with tokens: the read-back runs
    status, text = await post(f"{hooks}/{kind}?user={USER}", {field: dots, "status": "DONE"})
    assert status == 400, text
    assert field in json.loads(text)["error"]


async def test_a_user_synchronization_does_not_say_whether_finapi_knows_the_user(
    sandbox_manager: SessionManager, hooks: str
) -> None:
    await import_connection(sandbox_manager, USER)
    known = await post(f"{hooks}/user-sync", {"userId": USER, "event": "DELETED"})
    unknown = await post(f"{hooks}/user-sync", {"userId": "never-a-user", "event": "DELETED"})
    assert known[0] == unknown[0] == 200
    assert known[1] == unknown[1]
    assert await sandbox_manager.store.get(sandbox_manager.key("finapi", USER)) is not None
