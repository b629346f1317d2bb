"""The sandbox application: services, fault injection, counters, and the control routes.

Control routes (never faulted):

* ``GET /_sandbox/stats`` - counters as JSON: token requests by grant, reuse violations,
  sessions killed, API calls by status, faults injected;
* ``POST /_sandbox/faults`` - replace the fault settings (``rate``, ``kinds``, ``scope``,
  ``latency``, ``retry_after``);
* ``POST /_sandbox/config`` - change TTLs and other numeric settings at run time;
* ``POST /_sandbox/clock`` - ``{"advance": seconds}`` moves the sandbox clock forward;
* ``/_sandbox/keycloak/...`` - many Keycloak sessions at once (seeding, refresh journal,
  checks): see :mod:`.fleet`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
from aiohttp import web

from .bankconnect import BankConnectService
from .common import REQUEST_ID, request_id
from .everifin_payments import EverifinPaymentService
from .finapi import FinApiService
from .finapi_data import FinApiDataService
from .finapi_payments import PaymentService
from .finapi_rules import RuleService
from .finapi_tasks import TaskService
from .fleet import routes as fleet_routes
from .keycloak import KeycloakService
from .state import AFTER_COMMIT_KINDS, Exchange, Faults, SandboxState
from .webform import WebFormService

__all__ = ["build_app"]

_TOKEN_SUFFIXES: Final = ("/token", "/revoke", "/logout")
_TUNABLE: Final = frozenset(
    {
        "finapi_client_token_ttl",
        "finapi_user_token_ttl",
        "finapi_refresh_token_ttl",
        "finapi_auto_verify_users",
        "finapi_max_login_attempts",
        "finapi_accounts_per_connection",
        "finapi_transactions_per_account",
        "finapi_transactions_per_update",
        "finapi_consent_days",
        "finapi_task_seconds",
        "keycloak_access_ttl",
        "sso_idle",
        "sso_max",
        "code_ttl",
        "transactions_per_account",
    }
)
STATE_KEY: Final = web.AppKey("sandbox_state", SandboxState)
SERVICES_KEY: Final = web.AppKey("sandbox_services", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _fault_response(kind: str, faults: Faults) -> web.StreamResponse | None:
    retry_after = {"Retry-After": str(int(faults.retry_after))}
    if kind in ("500", "502"):
        return web.json_response(
            {"error": "server_error", "error_description": "injected"}, status=int(kind)
        )
    if kind == "503":
        return web.Response(status=503, text="Service Unavailable", headers=retry_after)
    if kind == "429":
        return web.json_response({"error": "too_many_requests"}, status=429, headers=retry_after)
    if kind == "malformed":
        return web.Response(
            status=200, body=b'{"access_token": "trunc', content_type="application/json"
        )
    if kind == "html":
        return web.Response(
            status=502,
            text="<html><body><h1>502 Bad Gateway</h1></body></html>",
            content_type="text/html",
        )
    return None  # "drop": close the connection without answering


_ALL = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _middleware(state: SandboxState) -> Any:
    @web.middleware
    async def sandbox_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id(request)
        request[REQUEST_ID] = rid
        if request.path.startswith("/_sandbox"):
            return await handler(request)
        state.in_flight += 1
        try:
            return await _handle(request, handler)
        finally:
            state.in_flight -= 1

    async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request[REQUEST_ID]
        faults = state.config.faults
        scope = "token" if request.path.endswith(_TOKEN_SUFFIXES) else "api"
        in_scope = faults.scope in ("all", scope) and request.method in (faults.methods or _ALL)
        if in_scope and (faults.latency or faults.jitter):
            await request.read()  # received in full: a caller gone meanwhile changes nothing
            await asyncio.sleep(faults.latency + state.rng.uniform(0, faults.jitter))
        response: web.StreamResponse | None
        burst = in_scope and faults.burst > 0
        if burst or (in_scope and faults.rate and state.rng.random() < faults.rate):
            if burst:
                faults.burst -= 1
                kind = faults.kinds[faults.burst % len(faults.kinds)]
            else:
                kind = state.rng.choice(faults.kinds)
            state.count(f"faults_injected.{kind}")
            if kind in AFTER_COMMIT_KINDS:
                await handler(request)  # processed: only the answer goes wrong
                kind = kind.removesuffix("_after_commit")
            response = _fault_response(kind, faults)
            if response is None and kind == "timeout":
                await asyncio.sleep(faults.timeout_delay)
            if response is None:
                if request.transport is not None:
                    request.transport.abort()
                state.count("api_calls.dropped")
                raise asyncio.CancelledError
        else:
            response = await handler(request)
        response.headers["X-Request-Id"] = rid
        state.count(f"api_calls.{response.status}")
        if state.config.record_requests:
            await _record(state, request, response)
        return response

    return sandbox_middleware


async def _record(state: SandboxState, request: web.Request, response: web.StreamResponse) -> None:
    body = await request.read()
    response_body = response.body if isinstance(response, web.Response) else b""
    state.journal.append(
        Exchange(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body if isinstance(body, bytes) else b"",
            content_type=request.content_type,
            status=response.status,
            response_headers=dict(response.headers),
            response_body=response_body if isinstance(response_body, bytes) else b"",
            response_content_type=response.content_type,
            query_pairs=tuple(request.query.items()),
        )
    )


async def _stats(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = state.stats()
    body["faults"] = attrs.asdict(state.config.faults)
    body["clock_offset"] = state.clock.offset
    return web.json_response(body)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


async def _set_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _body(request)
    for name in ("kinds", "methods"):
        if isinstance(body.get(name), list):
            body[name] = tuple(str(item) for item in body[name])
    try:
        state.config.faults = Faults(**body)
    except (TypeError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(attrs.asdict(state.config.faults))


async def _set_config(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _body(request)
    unknown = set(body) - _TUNABLE
    if unknown:
        return web.json_response({"error": f"not tunable: {sorted(unknown)}"}, status=400)
    for name, value in body.items():
        if not isinstance(value, (int, float)) or value < 0:
            return web.json_response({"error": f"{name} must be a number >= 0"}, status=400)
    for name, value in body.items():
        setattr(state.config, name, type(getattr(state.config, name))(value))
    return web.json_response({name: getattr(state.config, name) for name in sorted(_TUNABLE)})


async def _advance_clock(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _body(request)
    seconds = body.get("advance")
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return web.json_response({"error": "advance must be a number >= 0"}, status=400)
    state.clock.advance(float(seconds))
    return web.json_response({"clock_offset": state.clock.offset})


async def _index(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    base = str(request.url.origin())
    config = state.config
    return web.json_response(
        {
            # The sandbox's own test clients: they guard nothing real, so they are shown.
            "finapi": {
                "base_url": base,
                "api_version": config.finapi_version,
                "client_id": config.finapi_client_id,
                "client_secret": config.finapi_client_secret,
            },
            "everifin": {
                "idp_url": base + "/auth",
                "realm": config.realm,
                "api_url": base,
                "discovery": f"{base}/auth/realms/{config.realm}/.well-known/openid-configuration",
                "client_id": config.everifin_client_id,
                "client_secret": config.everifin_client_secret,
                "redirect_uris": list(config.everifin_redirect_uris),
                "users": sorted(config.everifin_users),
            },
            "paygate": {
                "idp_url": base + "/auth",
                "realm": config.paygate_realm,
                "pay_url": base + "/paygate",
                "client_id": config.paygate_client_id,
                "client_secret": config.paygate_client_secret,
            },
            "stats": base + "/_sandbox/stats",
        }
    )


def build_app(state: SandboxState) -> web.Application:
    """Assemble the sandbox application for ``state``."""
    app = web.Application(middlewares=[_middleware(state)])
    finapi = FinApiService(state)
    keycloak = KeycloakService(state)
    bankconnect = BankConnectService(state, keycloak)
    finapi_data = FinApiDataService(state, finapi)
    webform = WebFormService(state, finapi, finapi_data)
    tasks = TaskService(state, finapi, finapi_data, webform)
    payments = PaymentService(state, finapi, finapi_data, webform)
    rules = RuleService(state, finapi)
    everifin_payments = EverifinPaymentService(state, keycloak)
    app[STATE_KEY] = state
    app[SERVICES_KEY] = {
        "finapi": finapi,
        "keycloak": keycloak,
        "bankconnect": bankconnect,
        "webform": webform,
        "finapi_data": finapi_data,
        "tasks": tasks,
        "payments": payments,
        "rules": rules,
        "everifin_payments": everifin_payments,
    }
    app.on_cleanup.append(tasks.close)
    app.on_cleanup.append(rules.close)
    app.on_cleanup.append(everifin_payments.close)
    app.add_routes(finapi.routes())
    app.add_routes(finapi_data.routes())
    app.add_routes(webform.routes())
    app.add_routes(tasks.routes())
    app.add_routes(payments.routes())
    app.add_routes(rules.routes())
    app.add_routes(keycloak.routes())
    app.add_routes(bankconnect.routes())
    app.add_routes(everifin_payments.routes())
    app.add_routes(fleet_routes(keycloak))
    app.add_routes(
        [
            web.get("/", _index),
            web.get("/_sandbox/stats", _stats),
            web.post("/_sandbox/faults", _set_faults),
            web.post("/_sandbox/config", _set_config),
            web.post("/_sandbox/clock", _advance_clock),
        ]
    )
    return app
