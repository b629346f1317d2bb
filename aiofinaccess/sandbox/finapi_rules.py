"""finAPI Access notification rules and user synchronization, emulated.

* ``/api/v1/notificationRules`` (and v2; the user's token): ``POST`` (``NotificationRuleParams``
  -> 201 ``NotificationRule``; 400 for an unknown ``triggerEvent``, a ``callbackHandle`` over
  512 characters or outside the spec's pattern, ``params`` not an object of strings), ``GET``
  (``triggerEvent``, ``includeDetails`` and ``ids`` filters) and ``DELETE`` (every rule ->
  ``IdentifierList``); ``GET`` and ``DELETE /notificationRules/{id}`` (another user's is 404).
* :meth:`RuleService.fire` is the batch update's notification: every rule of the user with
  that trigger POSTs ``{"notificationRuleId", "triggerEvent", "callbackHandle", ...}`` to
  ``finapi_notification_url``; ``POST /_sandbox/finapi/notify`` (``userId``, ``triggerEvent``,
  more fields to add) does the same over HTTP.
* A deleted user's rules go, and ``{"userId", "event": "DELETED"}`` is POSTed to
  ``finapi_user_sync_url``. Every callback is delivered as ``SandboxConfig.callbacks`` says
  (retries, lost answers, duplicates); counters ``notifications.sent``/``.failed`` and
  ``user_sync.sent``/``.failed``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any, Final

from aiohttp import web

from .common import post_callback
from .finapi import FinApiService, Refused
from .state import SandboxState

__all__ = ["RuleService"]

TRIGGERS: Final = (
    "NEW_ACCOUNT_BALANCE",
    "NEW_TRANSACTIONS",
    "BANK_LOGIN_ERROR",
    "FOREIGN_MONEY_TRANSFER",
    "LOW_ACCOUNT_BALANCE",
    "HIGH_TRANSACTION_AMOUNT",
    "CATEGORY_CASH_FLOW",
    "NEW_TERMS_AND_CONDITIONS",
)
_HANDLE: Final = re.compile(r"[A-Za-z0-9\u00a1-\u02af &(){}\[\].:,;?!+\-_$@#~`^\u20ac/=%\"]*")


class RuleService:
    """Notification rules of the emulated mandator's users, and the client-level callbacks."""

    def __init__(self, state: SandboxState, finapi: FinApiService) -> None:
        self.state = state
        self.finapi = finapi
        self.rules: dict[int, dict[str, Any]] = {}  # id -> the rule's JSON, with "_user"
        self._ids = itertools.count(1)
        self._senders: set[asyncio.Task[None]] = set()
        finapi.on_user_deleted.append(self._user_deleted)

    def routes(self) -> list[web.RouteDef]:
        """The API routes under ``/api/v1`` and ``/api/v2``, and the control route."""
        table = [web.post("/_sandbox/finapi/notify", self.control)]
        for version in ("v1", "v2"):
            base, guard = f"/api/{version}/notificationRules", self.finapi.version
            table += [
                web.post(base, guard(version, self.create)),
                web.get(base, guard(version, self.list)),
                web.delete(base, guard(version, self.delete_all)),
                web.get(base + "/{id}", guard(version, self.get)),
                web.delete(base + "/{id}", guard(version, self.delete)),
            ]
        return table

    async def close(self, _app: web.Application) -> None:
        """Wait for callbacks still being sent (the application's cleanup)."""
        await asyncio.gather(*self._senders, return_exceptions=True)

    # -- API -----------------------------------------------------------------------------------

    def _bad(self, request: web.Request, message: str) -> Refused:
        return Refused(self.finapi.error(request, 400, "BAD_REQUEST", message))

    async def create(self, request: web.Request) -> web.Response:
        """``POST /notificationRules``."""
        user_id = self.finapi.user_of(request)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._bad(request, "Body must be a JSON object")
        trigger, handle = body.get("triggerEvent"), body.get("callbackHandle")
        params, details = body.get("params") or {}, body.get("includeDetails", False)
        if trigger not in TRIGGERS:
            raise self._bad(request, "triggerEvent: unknown trigger event")
        if handle is not None and (
            not isinstance(handle, str) or len(handle) > 512 or not _HANDLE.fullmatch(handle)
        ):
            raise self._bad(request, "callbackHandle: at most 512 allowed characters")
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise self._bad(request, "params: must be an object of strings")
        if not isinstance(details, bool):
            raise self._bad(request, "includeDetails: must be a boolean")
        rule = {
            "id": next(self._ids),
            "triggerEvent": trigger,
            "params": params,
            "callbackHandle": handle,
            "includeDetails": details,
            "_user": user_id,
        }
        self.rules[rule["id"]] = rule
        return web.json_response(_public(rule), status=201)

    async def list(self, request: web.Request) -> web.Response:
        """``GET /notificationRules`` with its filters."""
        user_id = self.finapi.user_of(request)
        trigger = request.query.get("triggerEvent")
        details = request.query.get("includeDetails")
        ids = {p for raw in request.query.getall("ids", []) for p in raw.split(",") if p}
        if trigger is not None and trigger not in TRIGGERS:
            raise self._bad(request, "triggerEvent: unknown trigger event")
        found = [
            _public(rule)
            for rule in self.rules.values()
            if rule["_user"] == user_id
            and (trigger is None or rule["triggerEvent"] == trigger)
            and (details is None or str(rule["includeDetails"]).lower() == details)
            and (not ids or str(rule["id"]) in ids)
        ]
        return web.json_response({"notificationRules": found})

    def _mine(self, request: web.Request) -> dict[str, Any]:
        user_id = self.finapi.user_of(request)
        raw = request.match_info["id"]
        rule = self.rules.get(int(raw)) if raw.isdigit() else None
        if rule is None or rule["_user"] != user_id:
            raise Refused(
                self.finapi.error(request, 404, "UNKNOWN_ENTITY", "Notification rule not found")
            )
        return rule

    async def get(self, request: web.Request) -> web.Response:
        """``GET /notificationRules/{id}``."""
        return web.json_response(_public(self._mine(request)))

    async def delete(self, request: web.Request) -> web.Response:
        """``DELETE /notificationRules/{id}`` (empty 200)."""
        del self.rules[self._mine(request)["id"]]
        return web.Response(status=200)

    async def delete_all(self, request: web.Request) -> web.Response:
        """``DELETE /notificationRules`` -> the deleted ids."""
        user_id = self.finapi.user_of(request)
        ids = sorted(i for i, rule in self.rules.items() if rule["_user"] == user_id)
        for rule_id in ids:
            del self.rules[rule_id]
        return web.json_response({"identifiers": ids})

    # -- callbacks -----------------------------------------------------------------------------

    async def fire(self, user_id: str, trigger: str, **fields: Any) -> int:
        """Notify for every rule of ``user_id`` with ``trigger`` (``fields`` added to each
        notification); returns how many the app accepted."""
        url, accepted = self.state.config.finapi_notification_url, 0
        for rule in [r for r in self.rules.values() if r["_user"] == user_id]:
            if url is None or rule["triggerEvent"] != trigger:
                continue
            body = {
                "notificationRuleId": rule["id"],
                "triggerEvent": trigger,
                "callbackHandle": rule["callbackHandle"],
                **fields,
            }
            sent = await post_callback(url, body, self.state.config.callbacks)
            self.state.count(f"notifications.{'sent' if sent else 'failed'}")
            accepted += sent
        return accepted

    async def control(self, request: web.Request) -> web.Response:
        """``POST /_sandbox/finapi/notify``."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("userId"), str):
            return web.json_response({"error": "userId and triggerEvent are needed"}, status=400)
        fields = {k: v for k, v in body.items() if k not in ("userId", "triggerEvent")}
        sent = await self.fire(body["userId"], str(body.get("triggerEvent")), **fields)
        return web.json_response({"sent": sent})

    def _user_deleted(self, user_id: str) -> None:
        for rule_id in [i for i, rule in self.rules.items() if rule["_user"] == user_id]:
            del self.rules[rule_id]
        url = self.state.config.finapi_user_sync_url
        if url is not None:  # after the deletion's answer, as finAPI's asynchronous sync
            sender = asyncio.get_running_loop().create_task(self._sync(url, user_id))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)

    async def _sync(self, url: str, user_id: str) -> None:
        body = {"userId": user_id, "event": "DELETED"}
        sent = await post_callback(url, body, self.state.config.callbacks)
        self.state.count(f"user_sync.{'sent' if sent else 'failed'}")


def _public(rule: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in rule.items() if not key.startswith("_")}
