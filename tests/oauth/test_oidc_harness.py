"""The oidc-provider harness works, checked with plain aiohttp (no SDK code).

These also pin down the server behaviour the SDK's end-to-end tests rely on: a refresh token
from the code grant, rotation on every refresh, and reuse detection that revokes the grant.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from tests.support.oidc_harness import (
    OidcProvider,
    ensure_installed,
    headless_login,
    running_oidc_provider,
)

ACCESS_TTL = 120


@pytest.fixture(scope="module")
def provider_dir() -> Path:
    path = ensure_installed()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are required in CI for the oidc-provider tests")
        pytest.skip("node and npm are needed for the oidc-provider tests")
    return path


@pytest.fixture
async def oidc(provider_dir: Path) -> AsyncIterator[OidcProvider]:
    async with running_oidc_provider(access_ttl=ACCESS_TTL) as provider:
        yield provider


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: without it aiohttp drops cookies set by an IP-address host.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def discover(session: aiohttp.ClientSession, oidc: OidcProvider) -> dict[str, Any]:
    async with session.get(oidc.discovery_url) as response:
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return document


def authorization_url(
    config: dict[str, Any], oidc: OidcProvider, client_id: str, *, pkce: bool = True
) -> tuple[str, str, str]:
    """The URL, its state, and the PKCE verifier."""
    state = secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": oidc.redirect_uri,
        "scope": " ".join(oidc.scopes),
        "state": state,
    }
    if pkce:
        digest = hashlib.sha256(verifier.encode()).digest()
        params["code_challenge"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        params["code_challenge_method"] = "S256"
    return f"{config['authorization_endpoint']}?{urlencode(params)}", state, verifier


def callback_params(callback_url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(callback_url).query).items()}


async def post_token(
    session: aiohttp.ClientSession,
    config: dict[str, Any],
    oidc: OidcProvider,
    form: dict[str, str],
    *,
    basic: bool = False,
) -> tuple[int, dict[str, Any]]:
    headers = {}
    if basic:
        headers["Authorization"] = aiohttp.encode_basic_auth(
            oidc.basic_client_id, oidc.client_secret
        )
    else:
        form = {**form, "client_id": oidc.client_id, "client_secret": oidc.client_secret}
    async with session.post(config["token_endpoint"], data=form, headers=headers) as response:
        body: dict[str, Any] = await response.json()
        return response.status, body


async def log_in_and_exchange(
    session: aiohttp.ClientSession, config: dict[str, Any], oidc: OidcProvider, *, basic: bool
) -> dict[str, Any]:
    client_id = oidc.basic_client_id if basic else oidc.client_id
    url, state, verifier = authorization_url(config, oidc, client_id)
    callback = await headless_login(session, url)
    assert callback.startswith(oidc.redirect_uri + "?")
    params = callback_params(callback)
    assert params["state"] == state
    assert params["iss"] == oidc.issuer
    status, tokens = await post_token(
        session,
        config,
        oidc,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": oidc.redirect_uri,
            "code_verifier": verifier,
        },
        basic=basic,
    )
    assert status == 200, tokens
    return tokens


async def userinfo_status(
    session: aiohttp.ClientSession, config: dict[str, Any], access_token: str
) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    async with session.get(config["userinfo_endpoint"], headers=headers) as response:
        return response.status


async def test_discovery_lists_what_the_sdk_uses(
    oidc: OidcProvider, session: aiohttp.ClientSession
) -> None:
    config = await discover(session, oidc)
    assert config["issuer"] == oidc.issuer
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "refresh_token"} <= set(config["grant_types_supported"])
    assert {"client_secret_post", "client_secret_basic"} <= set(
        config["token_endpoint_auth_methods_supported"]
    )
    for endpoint in ("token", "revocation", "introspection", "end_session"):
        assert config[f"{endpoint}_endpoint"].startswith(oidc.issuer + "/")


async def test_code_refresh_rotation_and_reuse_detection(
    oidc: OidcProvider, session: aiohttp.ClientSession
) -> None:
    config = await discover(session, oidc)
    first = await log_in_and_exchange(session, config, oidc, basic=False)
    assert first["token_type"] == "Bearer"
    assert first["expires_in"] == ACCESS_TTL
    assert first["scope"] == "openid"
    assert {"access_token", "refresh_token", "id_token"} <= first.keys()

    status, second = await post_token(
        session,
        config,
        oidc,
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert status == 200, second
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == ACCESS_TTL
    assert "refresh_expires_in" not in second
    assert await userinfo_status(session, config, second["access_token"]) == 200

    # Replaying the rotated token fails...
    status, replay = await post_token(
        session,
        config,
        oidc,
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert (status, replay) == (
        400,
        {"error": "invalid_grant", "error_description": "grant request is invalid"},
    )
    # ...and revokes the grant: the newest refresh token and access token are dead too.
    status, newest = await post_token(
        session,
        config,
        oidc,
        {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
    )
    assert (status, newest) == (
        400,
        {"error": "invalid_grant", "error_description": "grant request is invalid"},
    )
    assert await userinfo_status(session, config, second["access_token"]) == 401


async def test_basic_auth_client_and_revocation(
    oidc: OidcProvider, session: aiohttp.ClientSession
) -> None:
    config = await discover(session, oidc)
    tokens = await log_in_and_exchange(session, config, oidc, basic=True)
    headers = {"Authorization": aiohttp.encode_basic_auth(oidc.basic_client_id, oidc.client_secret)}
    form = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    async with session.post(config["revocation_endpoint"], data=form, headers=headers) as response:
        assert response.status == 200
    status, body = await post_token(
        session,
        config,
        oidc,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        basic=True,
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_pkce_is_required(oidc: OidcProvider, session: aiohttp.ClientSession) -> None:
    config = await discover(session, oidc)
    url, state, _ = authorization_url(config, oidc, oidc.client_id, pkce=False)
    params = callback_params(await headless_login(session, url))
    assert params["error"] == "invalid_request"
    assert params["state"] == state
    assert "code" not in params
