"""A small, independent OAuth server and protected API for tests that need real HTTP.

It shares no code with the SDK. It issues random tokens, rotates refresh tokens (an old one
is refused with invalid_grant and kills its session, as Keycloak does), and records every
secret it ever handed out so tests can search logs and messages for them.

Routes: ``/realms/test/...`` (Keycloak-style, client auth post or basic),
``/api/v2/oauth/token|revoke`` (finAPI-style: revoke with the client's bearer token), and
``/api/resource`` (401 unless the bearer is a live access token).
"""

from __future__ import annotations

import base64
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
from aiohttp import web
from aiohttp.test_utils import TestServer

CLIENT_ID = "test-client"
CLIENT_SECRET = "client-secret-" + secrets.token_hex(8)
USERS = {"alice": "alice-password-" + secrets.token_hex(4)}
REALM = "/realms/test"
OIDC = REALM + "/protocol/openid-connect"


@attrs.define
class _Session:
    user: str | None
    refresh_token: str | None
    alive: bool = True


@attrs.define
class FakeProvider:
    """State of the fake provider; inspect it from tests."""

    expires_in: int = 300
    access: dict[str, _Session] = attrs.Factory(dict)
    refresh: dict[str, _Session] = attrs.Factory(dict)
    codes: dict[str, tuple[str, str | None]] = attrs.Factory(dict)
    issued_secrets: set[str] = attrs.Factory(set)
    grants: Counter[str] = attrs.Factory(Counter)
    reuse_violations: int = 0
    base_url: str = ""
    reject_all: bool = False
    resource_calls: int = 0
    token_endpoint_bearers: int = 0

    def _new(self, prefix: str) -> str:
        value = f"{prefix}-{secrets.token_urlsafe(24)}"
        self.issued_secrets.add(value)
        return value

    def issue_code(self, user: str, challenge: str | None = None) -> str:
        """What the login page would do: mint a one-time authorization code."""
        code = self._new("code")
        self.codes[code] = (user, challenge)
        return code

    def revoke_all_access(self) -> None:
        """Make every access token fail with 401 (as if the server restarted)."""
        self.access.clear()

    def _tokens(self, session: _Session, *, with_refresh: bool) -> web.Response:
        access = self._new("at")
        self.access[access] = session
        body: dict[str, object] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if with_refresh:
            if session.refresh_token is not None:
                self.refresh.pop(session.refresh_token, None)
            session.refresh_token = self._new("rt")
            self.refresh[session.refresh_token] = session
            body.update(
                refresh_token=session.refresh_token,
                refresh_expires_in=1800,
                id_token=self._new("idt"),
            )
        return web.json_response(body)

    @staticmethod
    def _client_ok(request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == CLIENT_ID and secrets.compare_digest(secret, CLIENT_SECRET)

    async def token(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            self.token_endpoint_bearers += 1
        form = dict(await request.post())
        grant = str(form.get("grant_type"))
        self.grants[grant] += 1
        if not self._client_ok(request, {k: str(v) for k, v in form.items()}):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client credentials"},
                status=401,
            )
        if grant == "client_credentials":
            return self._tokens(_Session(None, None), with_refresh=False)
        if grant == "password":
            user = str(form.get("username"))
            if USERS.get(user) != form.get("password"):
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "Invalid user credentials"},
                    status=400,
                )
            return self._tokens(_Session(user, None), with_refresh=True)
        if grant == "authorization_code":
            entry = self.codes.pop(str(form.get("code")), None)
            if entry is None:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "Code not valid"}, status=400
                )
            return self._tokens(_Session(entry[0], None), with_refresh=True)
        if grant == "refresh_token":
            presented = str(form.get("refresh_token"))
            session = self.refresh.get(presented)
            if session is None or not session.alive:
                if presented in self.issued_secrets:
                    self.reuse_violations += 1
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "Stale token"}, status=400
                )
            return self._tokens(session, with_refresh=True)
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def revoke_rfc7009(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        if not self._client_ok(request, {k: str(v) for k, v in form.items()}):
            return web.json_response({"error": "invalid_client"}, status=401)
        self._kill(str(form.get("token")))
        return web.Response(status=200)

    async def revoke_bearer(self, request: web.Request) -> web.Response:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.access:
            return web.json_response({"error": "invalid_token"}, status=401)
        self._kill(str((await request.post()).get("token")))
        return web.Response(status=200)

    async def logout(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self._kill(str(form.get("refresh_token")))
        return web.Response(status=204)

    def _kill(self, token: str) -> None:
        session = self.refresh.pop(token, None) or self.access.pop(token, None)
        if session is not None:
            session.alive = False

    async def resource(self, request: web.Request) -> web.Response:
        self.resource_calls += 1
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        session = self.access.get(bearer)
        if self.reject_all or session is None or not session.alive:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"user": session.user})

    async def discovery(self, request: web.Request) -> web.Response:
        issuer = self.base_url + REALM
        return web.json_response(
            {
                "issuer": issuer,
                "token_endpoint": issuer + "/protocol/openid-connect/token",
                "authorization_endpoint": issuer + "/protocol/openid-connect/auth",
                "revocation_endpoint": issuer + "/protocol/openid-connect/revoke",
                "end_session_endpoint": issuer + "/protocol/openid-connect/logout",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(OIDC + "/token", self.token)
        app.router.add_post(OIDC + "/revoke", self.revoke_rfc7009)
        app.router.add_post(OIDC + "/logout", self.logout)
        app.router.add_get(REALM + "/.well-known/openid-configuration", self.discovery)
        app.router.add_post("/api/v2/oauth/token", self.token)
        app.router.add_post("/api/v2/oauth/revoke", self.revoke_bearer)
        app.router.add_get("/api/resource", self.resource)
        return app


@asynccontextmanager
async def running_provider(expires_in: int = 300) -> AsyncIterator[FakeProvider]:
    """Start the fake provider on a free loopback port."""
    provider = FakeProvider(expires_in=expires_in)
    server = TestServer(provider.app(), host="127.0.0.1")
    await server.start_server()
    provider.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield provider
    finally:
        await server.close()
