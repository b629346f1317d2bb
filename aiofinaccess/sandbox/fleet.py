"""Many Keycloak sessions at once, for fleet tests and benchmarks: bulk seeding, a journal of
refresh grants, and checks of what a fleet of clients holds.

Logging 100,000 users in through the login page would take minutes; these control routes
register sessions the caller describes (its own tokens and expiries, so it can write the
matching token sets into its store without a token request). The sessions are ordinary ones:
their refresh tokens rotate, and a refresh token presented twice is a reuse violation that
detaches the session (:mod:`.keycloak`). Control routes are never faulted or counted.

* ``POST /_sandbox/keycloak/sessions`` ``{"user": "alice", "scope": "ais",
  "sessions": [[id, access_token, refresh_token, access_expires_at], ...]}`` - register them
  (``access_expires_at`` on the sandbox clock, epoch seconds) and start the refresh journal;
  answers ``{"seeded": n, "sessions": total}``;
* ``GET /_sandbox/keycloak/refreshes?offset=N&limit=L`` - refresh grants from the ``N``-th on:
  ``{"entries": [[time, session id ("" if unknown), status], ...], "next": offset}``;
* ``POST /_sandbox/keycloak/check`` ``{"refresh_tokens": [...]}`` - how many of these a client
  could still redeem (``current``), were replaced by a newer one (``stale``), belong to a session
  that is over (``dead``) or are ``unknown``;
* ``POST /_sandbox/keycloak/access-check`` ``{"samples": [[access_token, handed_out_at], ...]}``
  - how many access tokens had already expired when they were handed out (or are unknown).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from aiohttp import web

from .keycloak import KeycloakService, _Access, _Session

__all__ = ["MAX_SEED_BATCH", "check_access", "check_refresh", "routes", "seed_sessions"]

#: Sessions per seeding request (a batch is registered without yielding to the event loop; the
#: sandbox reads bodies up to 1 MiB, about 10,000 rows of typical tokens).
MAX_SEED_BATCH: Final = 10_000
_MAX_PAGE: Final = 100_000


def seed_sessions(
    keycloak: KeycloakService,
    sessions: Sequence[Sequence[Any]],
    *,
    user: str = "alice",
    scope: str = "ais",
) -> int:
    """Register ``[id, access_token, refresh_token, access_expires_at]`` sessions; how many.

    Each starts now (SSO idle and max count from here) with ``refresh_token`` as its only
    redeemable refresh token. Seeding also turns on the refresh journal.

    Raises:
        ValueError: A row is malformed, or an id or token is already known.
    """
    now = keycloak.state.clock.now()
    client_id = keycloak.state.config.everifin_client_id
    rows = [_row(row) for row in sessions]
    ids = {row[0] for row in rows}
    refresh = {row[2] for row in rows}
    access = {row[1] for row in rows}
    if (
        len(ids) != len(rows)
        or len(refresh) != len(rows)
        or len(access) != len(rows)
        or not ids.isdisjoint(keycloak.sessions)
        or not refresh.isdisjoint(keycloak.refresh)
        or not access.isdisjoint(keycloak.access)
    ):
        raise ValueError("session ids and tokens must be new and distinct")
    for session_id, access_token, refresh_token, expires_at in rows:
        session = _Session(
            id=session_id,
            user=user,
            client_id=client_id,
            scope=scope,
            started=now,
            last_activity=now,
            current_refresh=refresh_token,
        )
        keycloak.sessions[session_id] = session
        keycloak.refresh[refresh_token] = session
        keycloak.access[access_token] = _Access(session, expires_at)
    if keycloak.refresh_journal is None:
        keycloak.refresh_journal = []
    return len(rows)


def _row(row: Sequence[Any]) -> tuple[str, str, str, float]:
    if len(row) != 4:
        raise ValueError("each session is [id, access_token, refresh_token, expires_at]")
    session_id, access_token, refresh_token, expires_at = row
    texts = (session_id, access_token, refresh_token)
    if not all(isinstance(text, str) and text for text in texts):
        raise ValueError("session id and tokens must be non-empty strings")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        raise ValueError("expires_at must be a number (epoch seconds)")
    return session_id, access_token, refresh_token, float(expires_at)


def check_refresh(keycloak: KeycloakService, tokens: Sequence[str]) -> dict[str, int]:
    """Sort refresh tokens into ``current``, ``stale``, ``dead`` and ``unknown``."""
    now = keycloak.state.clock.now()
    config = keycloak.state.config
    verdict = dict.fromkeys(("current", "stale", "dead", "unknown"), 0)
    for token in tokens:
        session = keycloak.refresh.get(token)
        if session is None:
            verdict["unknown"] += 1
        elif (
            not session.active
            or not session.client_attached
            or now >= min(session.last_activity + config.sso_idle, session.started + config.sso_max)
        ):
            verdict["dead"] += 1
        elif session.current_refresh != token:
            verdict["stale"] += 1
        else:
            verdict["current"] += 1
    return verdict


def check_access(keycloak: KeycloakService, samples: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Count access tokens that had expired by the (client's wall-clock) time they were used."""
    offset = keycloak.state.clock.offset
    expired = unknown = 0
    for token, handed_out_at in samples:
        access = keycloak.access.get(token)
        if access is None:
            unknown += 1
        elif access.expires_at <= float(handed_out_at) + offset:
            expired += 1
    return {"checked": len(samples), "expired": expired, "unknown": unknown}


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad("body must be JSON") from None
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    return body


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise _bad(f"{name} must be a list")
    return value


def routes(keycloak: KeycloakService) -> list[web.RouteDef]:
    """The control routes above, for ``keycloak``'s realm."""

    async def seed(request: web.Request) -> web.Response:
        body = await _json_object(request)
        sessions = _list(body, "sessions")
        if len(sessions) > MAX_SEED_BATCH:
            raise _bad(f"at most {MAX_SEED_BATCH} sessions per request")
        try:
            seeded = seed_sessions(
                keycloak,
                sessions,
                user=str(body.get("user", "alice")),
                scope=str(body.get("scope", "ais")),
            )
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"seeded": seeded, "sessions": len(keycloak.sessions)})

    async def refreshes(request: web.Request) -> web.Response:
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", str(_MAX_PAGE)))
        except ValueError:
            raise _bad("offset and limit must be integers") from None
        if offset < 0 or not 0 < limit <= _MAX_PAGE:
            raise _bad(f"offset >= 0 and 0 < limit <= {_MAX_PAGE}")
        journal = keycloak.refresh_journal or []
        entries = journal[offset : offset + limit]
        return web.json_response({"entries": entries, "next": offset + len(entries)})

    async def check(request: web.Request) -> web.Response:
        tokens = _list(await _json_object(request), "refresh_tokens")
        return web.json_response(check_refresh(keycloak, [str(token) for token in tokens]))

    async def access_check(request: web.Request) -> web.Response:
        samples = _list(await _json_object(request), "samples")
        if not all(isinstance(sample, list) and len(sample) == 2 for sample in samples):
            raise _bad("each sample is [access_token, handed_out_at]")
        return web.json_response(check_access(keycloak, samples))

    return [
        web.post("/_sandbox/keycloak/sessions", seed),
        web.get("/_sandbox/keycloak/refreshes", refreshes),
        web.post("/_sandbox/keycloak/check", check),
        web.post("/_sandbox/keycloak/access-check", access_check),
    ]
