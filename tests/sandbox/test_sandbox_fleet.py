"""The sandbox's fleet controls: seeded Keycloak sessions rotate like logged-in ones, the refresh
journal records every grant, and the checks tell current, stale and dead tokens apart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiofinaccess.sandbox import Sandbox


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def rows(count: int, expires_at: float) -> list[list[Any]]:
    return [[f"fleet-{i}", f"kc_at_fleet{i}", f"kc_rt_fleet{i}", expires_at] for i in range(count)]


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json(content_type=None)


async def refresh(
    http: aiohttp.ClientSession, sandbox: Sandbox, token: str
) -> tuple[int, dict[str, Any]]:
    config = sandbox.config
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": config.everifin_client_id,
        "client_secret": config.everifin_client_secret,
    }
    url = sandbox.issuer + "/protocol/openid-connect/token"
    async with http.post(url, data=form) as response:
        return response.status, await response.json()


async def test_seeded_sessions_rotate_detect_reuse_and_are_journaled(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.base_url + "/_sandbox/keycloak"
    status, body = await post(http, base + "/sessions", {"sessions": rows(3, time.time() + 60)})
    assert (status, body) == (200, {"seeded": 3, "sessions": 3})

    status, renewed = await refresh(http, sandbox, "kc_rt_fleet0")
    assert status == 200
    assert renewed["session_state"] == "fleet-0"
    new_token = renewed["refresh_token"]
    status, verdict = await post(
        http,
        base + "/check",
        {"refresh_tokens": ["kc_rt_fleet0", new_token, "kc_rt_fleet1", "nonsense"]},
    )
    assert verdict == {"current": 2, "stale": 1, "dead": 0, "unknown": 1}

    # The old token again: a reuse violation that kills the session, new token included.
    status, error = await refresh(http, sandbox, "kc_rt_fleet0")
    assert (status, error["error"]) == (400, "invalid_grant")
    assert sandbox.stats()["reuse_violations"] == 1
    status, verdict = await post(http, base + "/check", {"refresh_tokens": [new_token]})
    assert verdict == {"current": 0, "stale": 0, "dead": 1, "unknown": 0}
    await refresh(http, sandbox, "unknown-token")

    async with http.get(base + "/refreshes") as response:
        journal = await response.json()
    assert [entry[1:] for entry in journal["entries"]] == [
        ["fleet-0", 200],
        ["fleet-0", 400],
        ["", 400],
    ]
    assert journal["next"] == 3
    assert all(abs(entry[0] - time.time()) < 30 for entry in journal["entries"])
    async with http.get(base + "/refreshes", params={"offset": "2", "limit": "5"}) as response:
        page = await response.json()
    assert page == {"entries": journal["entries"][2:], "next": 3}


async def test_access_check_counts_expired_and_unknown_tokens(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.base_url + "/_sandbox/keycloak"
    now = time.time()
    await post(http, base + "/sessions", {"sessions": rows(2, now + 10)})
    samples = [["kc_at_fleet0", now], ["kc_at_fleet1", now + 11], ["kc_at_nobody", now]]
    status, verdict = await post(http, base + "/access-check", {"samples": samples})
    assert (status, verdict) == (200, {"checked": 3, "expired": 1, "unknown": 1})


@pytest.mark.parametrize(
    "body",
    [
        {"sessions": [["only-id"]]},
        {"sessions": [["id", "", "rt", 1.0]]},
        {"sessions": [["id", "at", "rt", "soon"]]},
        {"sessions": [["id", "at", "rt", 1.0], ["id", "at2", "rt2", 1.0]]},
        {"sessions": "not a list"},
        [1, 2],
    ],
)
async def test_malformed_seeds_are_refused_and_seed_nothing(
    sandbox: Sandbox, http: aiohttp.ClientSession, body: Any
) -> None:
    status, _ = await post(http, sandbox.base_url + "/_sandbox/keycloak/sessions", body)
    assert status == 400
    assert sandbox.service("keycloak").sessions == {}


async def test_a_seeded_token_cannot_be_seeded_twice(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.base_url + "/_sandbox/keycloak/sessions"
    assert (await post(http, url, {"sessions": rows(1, 1.0)}))[0] == 200
    status, body = await post(http, url, {"sessions": [["other", "at", "kc_rt_fleet0", 1.0]]})
    assert status == 400
    assert "new and distinct" in body["error"]
    assert len(sandbox.service("keycloak").sessions) == 1
