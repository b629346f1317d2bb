"""The aiohttp example's own POST /disconnect refuses a cross-site form (issue 22, finding 10)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from aiofinaccess.sandbox import run_sandbox
from tests.support.examples import load_example


async def test_example_disconnect_refuses_a_foreign_origin() -> None:
    example = load_example("aiohttp_app")
    async with (
        run_sandbox() as sandbox,
        example.sandbox_manager(sandbox.base_url) as manager,
        TestClient(TestServer(example.create_app(manager))) as client,
    ):
        own = str(client.make_url("/").origin())
        foreign = await client.post(
            "/disconnect", headers={"Origin": "https://evil.example"}, allow_redirects=False
        )
        same = await client.post("/disconnect", headers={"Origin": own}, allow_redirects=False)
    assert (foreign.status, same.status) == (403, 303)
