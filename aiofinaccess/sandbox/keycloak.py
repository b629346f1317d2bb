"""Everifin's Keycloak, emulated: login page, code flow, rotating refresh tokens, logout, revoke.

Served under ``/auth/realms/{realm}``. The rules are Keycloak's with "Revoke Refresh Token" on
and "Refresh Token Max Reuse" 0 (``SandboxConfig.keycloak_refresh_max_reuse``), as
``shared/reference/everifin_keycloak.md`` (B5-B9) lists:

* every refresh returns a new refresh token; presenting an older one fails with
  ``400 invalid_grant "Stale token"`` and *detaches the client session*, so the newest token
  fails too (``"Session doesn't have required client"``). With a max reuse of N, the token
  used last may be presented N more times (each answered with new tokens, of which only the
  newest counts) before ``"Maximum allowed refresh token reuse exceeded"`` detaches it alike;
* an authorization code works once; a second exchange fails and kills the session it made;
* ``refresh_expires_in`` follows SSO Session Idle and SSO Session Max, and a refresh extends
  the idle window;
* logout ends the session; access tokens stay valid until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import unquote_plus

import attrs
from aiohttp import web
from yarl import URL

from .common import form_fields, json_error, new_token
from .redirects import redirect_allowed
from .state import SandboxState

__all__ = ["KeycloakService"]

_KNOWN_SCOPES = frozenset({"openid", "ais", "pis", "offline_access", "profile", "email"})
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@attrs.define(eq=False)
class _Session:
    id: str
    user: str
    client_id: str
    scope: str
    started: float
    last_activity: float
    current_refresh: str | None = None
    #: The refresh token used last, and how often (Keycloak's reuse counter).
    last_used: str | None = None
    uses: int = 0
    active: bool = True
    client_attached: bool = True


@attrs.define
class _Code:
    session: _Session
    client_id: str
    redirect_uri: str
    challenge: str | None
    method: str | None
    expires_at: float
    used: bool = False


@attrs.define
class _Pending:
    params: dict[str, str]
    expires_at: float


@attrs.define
class _Access:
    session: _Session
    expires_at: float


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__()
        self.response = response


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_error(status, {"error": error, "error_description": description})


def _redirect(location: URL) -> web.Response:
    return web.Response(status=302, headers={"Location": str(location)})


def _grant_error(description: str) -> web.Response:
    return _oauth_error(400, "invalid_grant", description)


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in to {realm}</title>
<style>
body {{font-family: sans-serif; max-width: 24em; margin: 4em auto}}
label, input, button {{display: block; width: 100%; margin: .4em 0}}
.error {{color: #b00}}
</style></head>
<body><h1>Sign in to {realm}</h1><p>aiofinaccess sandbox: Everifin BankConnect login</p>
{error}
<form id="kc-form-login" method="post" action="{action}">
<input type="hidden" name="pending" value="{pending}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username">
<label for="password">Password</label><input id="password" name="password" type="password">
<button id="kc-login" type="submit" name="login" value="login">Sign In</button>
<button id="kc-cancel" type="submit" name="cancel" value="cancel">Cancel</button>
</form></body></html>
"""


class KeycloakService:
    """One Keycloak realm with one confidential client (Everifin's)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.sessions: dict[str, _Session] = {}
        self.refresh: dict[str, _Session] = {}
        self.access: dict[str, _Access] = {}
        self.codes: dict[str, _Code] = {}
        self.pending: dict[str, _Pending] = {}
        #: ``[time, session id ("" if unknown), status]`` of every refresh grant once a fleet
        #: is seeded (:mod:`.fleet`); ``None``: not kept.
        self.refresh_journal: list[tuple[float, str, int]] | None = None

    @property
    def realm_path(self) -> str:
        return f"/auth/realms/{self.state.config.realm}"

    def routes(self) -> list[web.RouteDef]:
        """The realm's endpoints."""
        oidc = self.realm_path + "/protocol/openid-connect"
        return [
            web.get(self.realm_path + "/.well-known/openid-configuration", self.discovery),
            web.get(oidc + "/auth", self.authorize),
            web.post(self.realm_path + "/login-actions/authenticate", self.authenticate),
            web.post(oidc + "/token", self.token),
            web.post(oidc + "/logout", self.logout),
            web.post(oidc + "/revoke", self.revoke),
        ]

    # -- what other services ask -----------------------------------------------------------------

    def seed_session(self, user: str, *, scope: str = "ais") -> dict[str, Any]:
        """Log ``user`` in without the login page (tests, benchmarks); return the token answer.

        The session is an ordinary one: its refresh token rotates and its reuse is detected.
        """
        now = self.state.clock.now()
        session = _Session(
            id=secrets.token_hex(16),
            user=user,
            client_id=self.state.config.everifin_client_id,
            scope=scope,
            started=now,
            last_activity=now,
        )
        self.sessions[session.id] = session
        body: dict[str, Any] = json.loads(cast("bytes", self._issue(session).body))
        return body

    def user_for(self, access_token: str | None) -> str | None:
        """The user behind a live access token (BankConnect's check), else ``None``."""
        access = self.access.get(access_token) if access_token else None
        if access is None or access.expires_at <= self.state.clock.now():
            return None
        return access.session.user

    # -- discovery and login -------------------------------------------------------------------

    def issuer(self, request: web.Request) -> str:
        return str(request.url.origin()) + self.realm_path

    async def discovery(self, request: web.Request) -> web.Response:
        """OpenID Provider Metadata, as Keycloak publishes it (the parts clients use)."""
        issuer = self.issuer(request)
        oidc = issuer + "/protocol/openid-connect"
        return web.json_response(
            {
                "issuer": issuer,
                "authorization_endpoint": oidc + "/auth",
                "token_endpoint": oidc + "/token",
                "end_session_endpoint": oidc + "/logout",
                "revocation_endpoint": oidc + "/revoke",
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": sorted(_KNOWN_SCOPES),
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def authorize(self, request: web.Request) -> web.Response:
        """``GET .../auth``: check the request, then show the login page."""
        params = dict(request.query)
        if params.get("client_id") != self.state.config.everifin_client_id:
            return web.Response(status=400, text="Client not found.", content_type="text/html")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_allowed(redirect_uri, self.state.config.everifin_redirect_uris):
            self.state.count("redirect_uri.refused")
            return web.Response(
                status=400, text="Invalid parameter: redirect_uri", content_type="text/html"
            )
        if params.get("response_type") != "code":
            return self._redirect_error(
                request, params, "unsupported_response_type", "Unsupported response_type"
            )
        scopes = set(params.get("scope", "").split())
        if scopes - _KNOWN_SCOPES:
            return self._redirect_error(
                request, params, "invalid_scope", "Invalid scopes: " + params["scope"]
            )
        if params.get("code_challenge") and params.get("code_challenge_method", "plain") not in (
            "S256",
            "plain",
        ):
            return self._redirect_error(
                request, params, "invalid_request", "Invalid parameter: code_challenge_method"
            )
        pending = secrets.token_urlsafe(16)
        self.pending[pending] = _Pending(params, self.state.clock.now() + 1800)
        return self._login_page(pending)

    def _login_page(
        self, pending: str, error: str | None = None, status: int = 200
    ) -> web.Response:
        text = _PAGE.format(
            realm=html.escape(self.state.config.realm),
            action=html.escape(self.realm_path + "/login-actions/authenticate"),
            pending=html.escape(pending),
            error=f'<p class="error" id="input-error">{html.escape(error)}</p>' if error else "",
        )
        return web.Response(status=status, text=text, content_type="text/html")

    def _redirect_error(
        self, request: web.Request, params: Mapping[str, str], error: str, description: str
    ) -> web.Response:
        query = {"error": error, "error_description": description, "iss": self.issuer(request)}
        if "state" in params:
            query["state"] = params["state"]
        return _redirect(URL(params["redirect_uri"]).update_query(query))

    async def authenticate(self, request: web.Request) -> web.Response:
        """``POST .../login-actions/authenticate``: the login form's target."""
        form = await form_fields(request) or {}
        pending = self.pending.get(form.get("pending", ""))
        if pending is None or pending.expires_at <= self.state.clock.now():
            return web.Response(
                status=400, text="Your login attempt timed out.", content_type="text/html"
            )
        params = pending.params
        if "cancel" in form:
            del self.pending[form["pending"]]
            return self._redirect_error(request, params, "access_denied", "User cancelled login")
        username = form.get("username", "")
        expected = self.state.config.everifin_users.get(username)
        if expected is None or not secrets.compare_digest(expected, form.get("password", "")):
            self.state.count("logins.failed")
            return self._login_page(form["pending"], "Invalid username or password.")
        del self.pending[form["pending"]]
        self.state.count("logins.succeeded")
        now = self.state.clock.now()
        session = _Session(
            id=secrets.token_hex(16),
            user=username,
            client_id=params["client_id"],
            scope=params.get("scope", ""),
            started=now,
            last_activity=now,
        )
        self.sessions[session.id] = session
        code = new_token("code")
        self.codes[code] = _Code(
            session=session,
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            challenge=params.get("code_challenge"),
            method=params.get("code_challenge_method", "plain")
            if params.get("code_challenge")
            else None,
            expires_at=now + self.state.config.code_ttl,
        )
        query = {"code": code, "session_state": session.id, "iss": self.issuer(request)}
        if "state" in params:
            query["state"] = params["state"]
        return _redirect(URL(params["redirect_uri"]).update_query(query))

    # -- token endpoint ------------------------------------------------------------------------

    def _authenticate_client(self, request: web.Request, form: Mapping[str, str]) -> str:
        header = request.headers.get("Authorization", "")
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode()
            except ValueError:
                raise _Refused(
                    _oauth_error(401, "invalid_client", "Invalid client credentials")
                ) from None
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if not client_id:
            raise _Refused(_oauth_error(400, "invalid_client", "Missing client_id parameter"))
        config = self.state.config
        if client_id != config.everifin_client_id:
            raise _Refused(
                _oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")
            )
        if not secret:
            raise _Refused(
                _oauth_error(401, "unauthorized_client", "Client secret not provided in request")
            )
        if not secrets.compare_digest(secret, config.everifin_client_secret):
            raise _Refused(
                _oauth_error(
                    401, "unauthorized_client", "Invalid client or Invalid client credentials"
                )
            )
        return client_id

    async def token(self, request: web.Request) -> web.Response:
        """``POST .../token``: authorization_code and refresh_token."""
        form = await form_fields(request)
        if form is None:
            return _oauth_error(
                400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"
            )
        grant = form.get("grant_type", "")
        self.state.count(f"token_requests.everifin_{grant or 'missing'}")
        try:
            client_id = self._authenticate_client(request, form)
            if grant == "authorization_code":
                return self._exchange_code(client_id, form)
            if grant == "refresh_token":
                response = self._refresh(client_id, form)
                if self.refresh_journal is not None:
                    session = self.refresh.get(form.get("refresh_token", ""))
                    entry = (self.state.clock.now(), session.id if session else "", response.status)
                    self.refresh_journal.append(entry)
                return response
        except _Refused as refused:
            return refused.response
        if grant == "password":
            return _oauth_error(
                400, "unauthorized_client", "Client not allowed for direct access grants"
            )
        if grant == "client_credentials":
            return _oauth_error(
                400, "unauthorized_client", "Client not enabled to retrieve service account"
            )
        return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")

    def _kill(self, session: _Session, *, detach_only: bool = False) -> None:
        if session.client_attached and session.active:
            self.state.count("sessions_killed")
        session.client_attached = False
        if not detach_only:
            session.active = False

    def _exchange_code(self, client_id: str, form: Mapping[str, str]) -> web.Response:
        if not form.get("code"):
            return _oauth_error(400, "invalid_request", "Missing parameter: code")
        code = self.codes.get(form["code"])
        if code is None:
            return _grant_error("Code not valid")
        if code.used:
            # Keycloak detaches the session a replayed code created: a reloaded callback that
            # exchanges again kills the login.
            self.state.count("code_reuse")
            self._kill(code.session)
            return _grant_error("Code not valid")
        code.used = True
        if code.expires_at <= self.state.clock.now():
            return _grant_error("Code is expired")
        if code.client_id != client_id:
            return _oauth_error(400, "invalid_grant", "Auth error")
        if form.get("redirect_uri") != code.redirect_uri:
            return _grant_error("Incorrect redirect_uri")
        verifier = form.get("code_verifier")
        if code.challenge is None:
            if verifier:
                return _grant_error(
                    "PKCE code verifier specified but challenge not present in authorization"
                )
        else:
            if not verifier:
                return _grant_error("PKCE code verifier not specified")
            if not _VERIFIER.match(verifier):
                return _grant_error("PKCE verification failed: Invalid code verifier")
            if code.method == "S256":
                digest = hashlib.sha256(verifier.encode("ascii")).digest()
                computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            else:
                computed = verifier
            if not secrets.compare_digest(computed, code.challenge):
                return _grant_error("PKCE verification failed: Code mismatch")
        if not code.session.active or not code.session.client_attached:
            return _grant_error("Session not active")
        return self._issue(code.session)

    def _refresh_deadline(self, session: _Session) -> float:
        config = self.state.config
        return min(session.last_activity + config.sso_idle, session.started + config.sso_max)

    def _refresh(self, client_id: str, form: Mapping[str, str]) -> web.Response:
        presented = form.get("refresh_token", "")
        session = self.refresh.get(presented)
        now = self.state.clock.now()
        if session is None:
            return _grant_error("Invalid refresh token")
        if session.client_id != client_id:
            return _grant_error(
                "Invalid refresh token. Token client and authorized client don't match"
            )
        if now >= self._refresh_deadline(session):
            return _grant_error("Token is not active")
        if not session.active:
            return _grant_error("Session not active")
        if not session.client_attached:
            return _grant_error("Session doesn't have required client")
        if presented == session.current_refresh:
            session.last_used, session.uses = presented, 1
        elif presented == session.last_used:
            # A replay of the token used last: allowed max-reuse times (a lost answer retried).
            session.uses += 1
            if session.uses > self.state.config.keycloak_refresh_max_reuse + 1:
                self.state.count("reuse_violations")
                self._kill(session, detach_only=True)
                return _grant_error("Maximum allowed refresh token reuse exceeded")
            self.state.count("refresh_reuses")
        else:
            # Issued before the last refresh: a replay (a race or a leak).
            self.state.count("reuse_violations")
            self._kill(session, detach_only=True)
            return _grant_error("Stale token")
        session.last_activity = now
        return self._issue(session)

    def _issue(self, session: _Session) -> web.Response:
        config = self.state.config
        now = self.state.clock.now()
        access = new_token("kc_at")
        self.access[access] = _Access(session, now + config.keycloak_access_ttl)
        refresh = new_token("kc_rt")
        self.refresh[refresh] = session
        session.current_refresh = refresh
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": int(config.keycloak_access_ttl),
            "refresh_expires_in": max(0, int(self._refresh_deadline(session) - now)),
            "refresh_token": refresh,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": session.id,
            "scope": session.scope,
        }
        if "openid" in session.scope.split():
            body["id_token"] = new_token("kc_idt")
        return web.json_response(body)

    # -- logout and revocation -----------------------------------------------------------------

    async def logout(self, request: web.Request) -> web.Response:
        """``POST .../logout`` with ``refresh_token``: ends the session (204)."""
        self.state.count("token_requests.everifin_logout")
        form = await form_fields(request) or {}
        try:
            self._authenticate_client(request, form)
        except _Refused as refused:
            return refused.response
        session = self.refresh.get(form.get("refresh_token", ""))
        if session is None:
            return _grant_error("Invalid refresh token")
        session.active = False
        return web.Response(status=204)

    async def revoke(self, request: web.Request) -> web.Response:
        """``POST .../revoke`` (RFC 7009): 200 even for unknown tokens."""
        self.state.count("token_requests.everifin_revoke")
        form = await form_fields(request) or {}
        try:
            self._authenticate_client(request, form)
        except _Refused as refused:
            return refused.response
        token = form.get("token", "")
        if not token:
            return _oauth_error(400, "invalid_request", "Token not provided")
        session = self.refresh.get(token)
        if session is not None:
            session.active = False  # revoking a refresh token revokes the consent
        self.access.pop(token, None)
        return web.Response(status=200)
