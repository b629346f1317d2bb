"""finAPI Access, emulated: token, revoke and the users API, with finAPI's status codes.

Behaviour follows ``shared/reference/finapi.md`` (and the v1 OpenAPI spec for shapes):

* ``oauth/token`` takes a form body only and the client credentials in *every* grant. The
  client token is the same until it expires (``expires_in`` is what is left of it). Refresh
  works for user tokens only and returns no new refresh token. 400 bad user credentials or
  refresh token, 401 bad client, 403 unverified user, 423 locked user.
* ``oauth/revoke`` needs the client's bearer token, takes a form (v2) or query (v1), answers
  200 even for unknown tokens, and honours ``token_type_hint``.
* Users: create (201, ``422 ENTITY_EXISTS`` for a taken id, case-insensitive), get, edit,
  delete, delete unverified, verify, verification status, request and execute a password
  change. The wrong kind of token gives 403. ``passwordChangeToken`` is not encrypted here
  (the real one is encrypted with the client's data decryption key).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
from aiohttp import web

from .common import REQUEST_ID, bearer, form_fields, json_error, new_token
from .state import SandboxState

__all__ = ["FinApiService", "Refused"]

_ID_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.+@]{1,36}$")
Kind = Literal["client", "user"]


@attrs.define
class _User:
    id: str
    password: str
    email: str | None = None
    phone: str | None = None
    auto_update: bool = False
    verified: bool = True
    failed_logins: int = 0
    change_token: str | None = None

    def public(self, *, reveal_password: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "password": self.password if reveal_password else "XXXXX",
            "email": self.email,
            "phone": self.phone,
            "isAutoUpdateEnabled": self.auto_update,
        }


@attrs.define(eq=False)
class _Grant:
    user_id: str | None
    refresh_token: str | None = None
    refresh_expires_at: float | None = None
    access_tokens: set[str] = attrs.Factory(set)


@attrs.define
class _Access:
    grant: _Grant
    expires_at: float | None

    @property
    def kind(self) -> Kind:
        return "client" if self.grant.user_id is None else "user"


class Refused(Exception):
    """Raised inside handlers (wrapped by :meth:`FinApiService.version`) to answer with
    ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__()
        self.response = response


Handler = Callable[[web.Request], Any]


class FinApiService:
    """One finAPI client (mandator) with its users and tokens."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.users: dict[str, _User] = {}
        self.access: dict[str, _Access] = {}
        self.refresh: dict[str, _Grant] = {}
        self.client_access: str | None = None
        #: Called with the id of a deleted user, so other services drop that user's data.
        self.on_user_deleted: list[Callable[[str], None]] = []

    # -- plumbing ------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """Routes for both API versions; the one not configured answers 403 mismatch."""
        table: list[web.RouteDef] = [
            web.post("/oauth/token", self.token),
            web.post("/api/v2/oauth/token", self.version("v2", self.token)),
            web.post("/api/v2/oauth/revoke", self.version("v2", self.revoke)),
            web.post("/oauth/revoke", self.version("v1", self.revoke)),
        ]
        for version in ("v1", "v2"):
            base = f"/api/{version}/users"
            table += [
                web.post(base, self.version(version, self.create_user)),
                web.get(base, self.version(version, self.get_user)),
                web.patch(base, self.version(version, self.edit_user)),
                web.delete(base, self.version(version, self.delete_user)),
                web.get(
                    base + "/verificationStatus", self.version(version, self.verification_status)
                ),
                web.post(base + "/verify/{user_id}", self.version(version, self.verify_user)),
                web.post(
                    base + "/requestPasswordChange",
                    self.version(version, self.request_password_change),
                ),
                web.post(
                    base + "/executePasswordChange",
                    self.version(version, self.execute_password_change),
                ),
                web.delete(base + "/{user_id}", self.version(version, self.delete_unverified_user)),
            ]
        return table

    def version(self, version: str, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if version != self.state.config.finapi_version:
                return self.error(request, 403, "FORBIDDEN", "API Version mismatch")
            try:
                response: web.StreamResponse = await handler(request)
            except Refused as refused:
                return refused.response
            return response

        return guarded

    def error(
        self, request: web.Request, status: int, code: str, message: str, kind: str = "BUSINESS"
    ) -> web.Response:
        """finAPI's ErrorMessage body (v1 dates without offset, v2 RFC 3339)."""
        now = dt.datetime.fromtimestamp(self.state.clock.now(), tz=dt.UTC)
        if self.state.config.finapi_version == "v1":
            date = now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
        else:
            date = now.isoformat(timespec="milliseconds")
        body = {
            "errors": [
                {"message": message, "code": code, "type": kind, "multiStepAuthentication": None}
            ],
            "date": date,
            "requestId": request.get(REQUEST_ID),
            "endpoint": f"{request.method} {request.path}",
            "authContext": self._auth_context(request),
            "bank": None,
        }
        return json_error(status, body)

    def _auth_context(self, request: web.Request) -> str:
        """finAPI's ``clientId/userId`` of the caller (``-`` where there is none)."""
        access = self.access.get(bearer(request) or "")
        user = access.grant.user_id if access is not None else None
        client = self.state.config.finapi_client_id if access is not None else "-"
        return f"{client}/{user or '-'}"

    @staticmethod
    def oauth_error(status: int, error: str, description: str) -> web.Response:
        return json_error(status, {"error": error, "error_description": description})

    def _expires_in(self, expires_at: float | None) -> int:
        if expires_at is None:
            return 0
        return max(1, math.ceil(expires_at - self.state.clock.now()))

    def _ttl(self, seconds: float) -> float | None:
        return None if seconds == 0 else self.state.clock.now() + seconds

    # -- token endpoint ------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        """``POST oauth/token``."""
        form = await form_fields(request)
        if form is None:
            return self.error(request, 400, "BAD_REQUEST", "Parameters must be sent as a form body")
        grant = form.get("grant_type", "")
        self.state.count(f"token_requests.finapi_{grant or 'missing'}")
        config = self.state.config
        client_ok = form.get("client_id") == config.finapi_client_id and secrets.compare_digest(
            form.get("client_secret", ""), config.finapi_client_secret
        )
        if not client_ok:
            return self.oauth_error(401, "unauthorized", "Bad client credentials")
        if grant == "client_credentials":
            return self._client_token()
        if grant == "password":
            return self._password(form.get("username", ""), form.get("password", ""), request)
        if grant == "refresh_token":
            return self._refresh(form.get("refresh_token", ""), request)
        return self.error(
            request, 400, "BAD_REQUEST", f"Unsupported grant type: {grant}", "TECHNICAL"
        )

    def _issue(self, grant: _Grant, ttl: float, *, with_refresh: bool) -> tuple[str, web.Response]:
        token = new_token("finapi_at")
        access = _Access(grant, self._ttl(ttl))
        self.access[token] = access
        grant.access_tokens.add(token)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self._expires_in(access.expires_at),
            "scope": "all",
        }
        if with_refresh and grant.refresh_token is not None:
            body["refresh_token"] = grant.refresh_token
        return token, web.json_response(body)

    def _alive(self, token: str | None) -> _Access | None:
        access = self.access.get(token) if token else None
        if access is None:
            return None
        if access.expires_at is not None and access.expires_at <= self.state.clock.now():
            return None
        return access

    def user_for(self, token: str | None) -> str | None:
        """The user a live user access token belongs to; ``None`` for anything else.

        For the other services of this mandator that take finAPI user tokens (Web Form 2.0):
        no token, an unknown, revoked or expired one, and a client token all give ``None``.
        """
        access = self._alive(token)
        return access.grant.user_id if access is not None else None

    def _client_token(self) -> web.Response:
        current = self._alive(self.client_access)
        if current is not None and self.client_access is not None:
            # finAPI hands back the same client token until it expires.
            return web.json_response(
                {
                    "access_token": self.client_access,
                    "token_type": "bearer",
                    "expires_in": self._expires_in(current.expires_at),
                    "scope": "all",
                }
            )
        self.client_access, response = self._issue(
            _Grant(None), self.state.config.finapi_client_token_ttl, with_refresh=False
        )
        return response

    def _password(self, username: str, password: str, request: web.Request) -> web.Response:
        config = self.state.config
        user = self.users.get(username.lower())
        if user is not None and user.failed_logins >= config.finapi_max_login_attempts:
            return self.error(request, 423, "LOCKED", "User is locked")
        if user is None or not secrets.compare_digest(user.password, password):
            if user is not None:
                user.failed_logins += 1
            # The v1 spec documents 400 for bad user credentials in the ErrorMessage shape.
            return self.error(request, 400, "BAD_REQUEST", "Bad user credentials")
        if not user.verified:
            return self.error(request, 403, "USER_NOT_VERIFIED", "User is not verified")
        user.failed_logins = 0
        grant = _Grant(user.id, new_token("finapi_rt"), self._ttl(config.finapi_refresh_token_ttl))
        assert grant.refresh_token is not None  # noqa: S101
        self.refresh[grant.refresh_token] = grant
        return self._issue(grant, config.finapi_user_token_ttl, with_refresh=True)[1]

    def _refresh(self, refresh_token: str, request: web.Request) -> web.Response:
        grant = self.refresh.get(refresh_token)
        now = self.state.clock.now()
        if grant is None or (
            grant.refresh_expires_at is not None and grant.refresh_expires_at <= now
        ):
            return self.error(request, 400, "BAD_REQUEST", "Invalid refresh token")
        return self._issue(grant, self.state.config.finapi_user_token_ttl, with_refresh=False)[1]

    # -- revocation ----------------------------------------------------------------------------

    async def revoke(self, request: web.Request) -> web.Response:
        """``POST oauth/revoke``: client bearer; v2 form body, v1 query parameters."""
        self.state.count("token_requests.finapi_revoke")
        caller = self._alive(bearer(request))
        if caller is None:
            return self.oauth_error(401, "invalid_token", "Invalid access token.")
        if caller.kind != "client":
            return self.error(request, 403, "UNAUTHORIZED_ACCESS", "A client token is required")
        params: Mapping[str, str]
        if self.state.config.finapi_version == "v1":
            params = request.query
        else:
            params = await form_fields(request) or {}
        token = params.get("token")
        if not token:
            return self.error(request, 400, "BAD_REQUEST", "token is required")
        hint = params.get("token_type_hint")
        if hint == "access_token":
            self._drop_access(token)
        else:
            grant = self.refresh.get(token) if hint == "refresh_token" else None
            if grant is None and hint is None:
                access = self.access.get(token)
                grant = self.refresh.get(token) or (access.grant if access else None)
            if grant is not None:
                self._drop_grant(grant)
        return web.Response(status=200)

    def _drop_access(self, token: str) -> None:
        access = self.access.pop(token, None)
        if access is not None:
            access.grant.access_tokens.discard(token)
        if token == self.client_access:
            self.client_access = None

    def _drop_grant(self, grant: _Grant) -> None:
        for token in list(grant.access_tokens):
            self._drop_access(token)
        if grant.refresh_token is not None:
            self.refresh.pop(grant.refresh_token, None)

    def _drop_user_tokens(self, user_id: str) -> None:
        grants = {a.grant for a in self.access.values() if a.grant.user_id == user_id}
        grants |= {g for g in self.refresh.values() if g.user_id == user_id}
        for grant in grants:
            self._drop_grant(grant)

    # -- users ---------------------------------------------------------------------------------

    def _caller(self, request: web.Request, kind: Kind) -> _Access:
        token = bearer(request)
        access = self.access.get(token) if token else None
        if access is None:
            raise Refused(self.oauth_error(401, "invalid_token", "Invalid access token."))
        if access.expires_at is not None and access.expires_at <= self.state.clock.now():
            raise Refused(self.oauth_error(401, "invalid_token", "Access token expired"))
        if access.kind != kind:
            raise Refused(
                self.error(
                    request, 403, "UNAUTHORIZED_ACCESS", f"This service needs a {kind} token"
                )
            )
        return access

    def user_of(self, request: web.Request) -> str:
        """The user behind the request's live user token; 401 or 403 raised as :class:`Refused`.

        For the other services of this mandator that take finAPI user tokens (the data API).
        """
        user_id = self._caller(request, "user").grant.user_id
        assert user_id is not None  # noqa: S101  (a user token always has one)
        return user_id

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise Refused(self.error(request, 400, "BAD_REQUEST", "Body must be JSON")) from None
        if not isinstance(body, dict):
            raise Refused(self.error(request, 400, "BAD_REQUEST", "Body must be a JSON object"))
        return body

    def _check_length(
        self, request: web.Request, name: str, value: object, low: int, high: int
    ) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not low <= len(value) <= high:
            raise Refused(
                self.error(
                    request,
                    400,
                    "BAD_REQUEST",
                    f"{name} must be a string of {low} to {high} characters",
                )
            )

    def _user(self, request: web.Request, user_id: str | None) -> _User:
        user = self.users.get((user_id or "").lower())
        if user is None:
            raise Refused(self.error(request, 404, "UNKNOWN_ENTITY", "User not found"))
        return user

    async def create_user(self, request: web.Request) -> web.Response:
        """``POST /users`` (client token) -> 201 User with the password in plain text."""
        self._caller(request, "client")
        body = await self._json(request)
        user_id = body.get("id") or new_token("user")[:36].replace("_", "-")
        password = body.get("password") or secrets.token_urlsafe(12)
        if not isinstance(user_id, str) or not _ID_PATTERN.match(user_id):
            return self.error(
                request, 400, "BAD_REQUEST", "id must be 1-36 characters of [a-zA-Z0-9-_.+@]"
            )
        self._check_length(request, "password", password, 6, 128)
        self._check_length(request, "email", body.get("email"), 1, 320)
        self._check_length(request, "phone", body.get("phone"), 1, 50)
        auto_update = body.get("isAutoUpdateEnabled", False)
        if not isinstance(auto_update, bool):
            return self.error(request, 400, "BAD_REQUEST", "isAutoUpdateEnabled must be a boolean")
        if user_id.lower() in self.users:
            return self.error(
                request, 422, "ENTITY_EXISTS", f"User with id '{user_id}' already exists"
            )
        user = _User(
            id=user_id,
            password=password,
            email=body.get("email"),
            phone=body.get("phone"),
            auto_update=auto_update,
            verified=self.state.config.finapi_auto_verify_users,
        )
        self.users[user_id.lower()] = user
        return web.json_response(user.public(reveal_password=True), status=201)

    async def get_user(self, request: web.Request) -> web.Response:
        """``GET /users`` (user token)."""
        access = self._caller(request, "user")
        return web.json_response(
            self._user(request, access.grant.user_id).public(reveal_password=False)
        )

    async def edit_user(self, request: web.Request) -> web.Response:
        """``PATCH /users`` (user token); ``""`` clears email or phone."""
        access = self._caller(request, "user")
        user = self._user(request, access.grant.user_id)
        body = await self._json(request)
        fields = {k: body.get(k) for k in ("email", "phone", "isAutoUpdateEnabled")}
        if all(value is None for value in fields.values()):
            return self.error(request, 400, "BAD_REQUEST", "At least one field must be given")
        for name, high in (("email", 320), ("phone", 50)):
            value = fields[name]
            if value == "":
                setattr(user, name, None)
            elif value is not None:
                self._check_length(request, name, value, 1, high)
                setattr(user, name, value)
        if fields["isAutoUpdateEnabled"] is not None:
            user.auto_update = bool(fields["isAutoUpdateEnabled"])
        return web.json_response(user.public(reveal_password=False))

    async def delete_user(self, request: web.Request) -> web.Response:
        """``DELETE /users`` (user token): the user, their data and every token."""
        access = self._caller(request, "user")
        user = self._user(request, access.grant.user_id)
        del self.users[user.id.lower()]
        self._drop_user_tokens(user.id)
        for forget in self.on_user_deleted:
            forget(user.id)
        return web.Response(status=200)

    async def delete_unverified_user(self, request: web.Request) -> web.Response:
        """``DELETE /users/{userId}`` (client token): only while unverified."""
        self._caller(request, "client")
        user = self._user(request, request.match_info["user_id"])
        if user.verified:
            return self.error(request, 422, "USER_ALREADY_VERIFIED", "User is already verified")
        del self.users[user.id.lower()]
        return web.Response(status=200)

    async def verify_user(self, request: web.Request) -> web.Response:
        """``POST /users/verify/{userId}`` (client token)."""
        self._caller(request, "client")
        user = self._user(request, request.match_info["user_id"])
        if user.verified:
            return self.error(request, 422, "USER_ALREADY_VERIFIED", "User is already verified")
        user.verified = True
        return web.Response(status=200)

    async def verification_status(self, request: web.Request) -> web.Response:
        """``GET /users/verificationStatus?userId=`` (client token)."""
        self._caller(request, "client")
        if not request.query.get("userId"):
            return self.error(request, 400, "BAD_REQUEST", "userId is required")
        user = self._user(request, request.query["userId"])
        return web.json_response({"userId": user.id, "isUserVerified": user.verified})

    async def request_password_change(self, request: web.Request) -> web.Response:
        """``POST /users/requestPasswordChange`` (client token)."""
        self._caller(request, "client")
        body = await self._json(request)
        user = self._user(request, body.get("userId"))
        if not user.verified:
            return self.error(request, 422, "USER_NOT_VERIFIED", "User is not verified")
        user.change_token = secrets.token_hex(16)
        return web.json_response(
            {"userId": user.id, "userEmail": user.email, "passwordChangeToken": user.change_token}
        )

    async def execute_password_change(self, request: web.Request) -> web.Response:
        """``POST /users/executePasswordChange`` (client token): revokes the user's tokens."""
        self._caller(request, "client")
        body = await self._json(request)
        user = self._user(request, body.get("userId"))
        self._check_length(request, "password", body.get("password"), 6, 128)
        token = body.get("passwordChangeToken")
        if (
            not isinstance(body.get("password"), str)
            or not isinstance(token, str)
            or user.change_token is None
            or not secrets.compare_digest(token, user.change_token)
        ):
            return self.error(request, 400, "BAD_REQUEST", "Invalid password change token")
        user.password = body["password"]
        user.change_token = None
        self._drop_user_tokens(user.id)
        return web.Response(status=200)
