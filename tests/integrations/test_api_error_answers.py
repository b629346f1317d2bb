"""A provider's error reaches the app's client as problem+json with its status and the
provider's request id (issue 24, item 4): only ``ReauthorizationRequired`` was mapped, and a
404, 423 or 5xx from the provider became a plain 500."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aiofinaccess import ApiError, SessionManager
from aiofinaccess.core.error_bodies import UnparsedErrorBody
from aiofinaccess.errors import LockedError, NotFoundError, RateLimitedError, ServerError
from aiofinaccess.integrations.starlette import StarletteConnect
from aiofinaccess.integrations.web import problem_middleware

BODY = UnparsedErrorBody("text/html", 12)
RAISED: dict[str, ApiError] = {
    "missing": NotFoundError(404, BODY, request_id="req-404"),
    "locked": LockedError(423, BODY, request_id="req-423"),
    "down": ServerError(503, BODY, request_id="req-503"),
    "slow": RateLimitedError(429, BODY, request_id="req-429", retry_after=7.0),
    "refused": ApiError(401, BODY, request_id="req-401"),
}


def _app() -> FastAPI:
    connect = StarletteConnect(SessionManager, user_id=lambda _request: "alice")
    app = FastAPI(exception_handlers=connect.exception_handlers)

    @app.get("/{what}")
    async def fail(what: str) -> None:
        raise RAISED[what]

    return app


def test_provider_errors_answer_problem_json() -> None:
    with TestClient(_app(), raise_server_exceptions=False) as client:
        answers = {what: client.get(f"/{what}") for what in RAISED}
    # What the app's client may act on keeps its status; the provider failing is a bad gateway;
    # its rate limit is our temporary unavailability; our own credentials refused, too.
    assert {what: answer.status_code for what, answer in answers.items()} == {
        "missing": 404,
        "locked": 423,
        "down": 502,
        "slow": 503,
        "refused": 502,
    }
    for what, answer in answers.items():
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["status"] == answer.status_code
        assert problem["provider_status"] == RAISED[what].status
        assert problem["request_id"] == RAISED[what].request_id
        assert problem["title"]
    assert answers["slow"].headers["retry-after"] == "7"


async def test_aiohttp_apps_get_the_same_answers() -> None:
    """``problem_middleware`` gives aiohttp.web apps the same mapping."""
    app = web.Application(middlewares=[problem_middleware])

    async def fail(request: web.Request) -> web.Response:
        raise RAISED[request.match_info["what"]]

    app.router.add_get("/{what}", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            statuses = {}
            for what, error in RAISED.items():
                async with session.get(f"http://127.0.0.1:{port}/{what}") as answer:
                    assert answer.content_type == "application/problem+json"
                    problem = await answer.json(content_type=None)
                    assert problem["request_id"] == error.request_id
                    statuses[what] = answer.status
    finally:
        await runner.cleanup()
    assert statuses == {"missing": 404, "locked": 423, "down": 502, "slow": 503, "refused": 502}
