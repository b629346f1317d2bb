"""finAPI Web Form 2.0, emulated: bank-connection import forms and the page the user opens.

Shapes and limits follow the Web Form 2.0 spec; a 400 lists every refused field as
``{field, message}``, other errors have the shape ``{code, description, timestamp, endpoint}``,
and a missing, unknown, expired or client token is 401 ``UNAUTHORIZED``.

* ``POST /api/webForms/bankConnectionImport`` (the user's token) -> 201 ``WebForm`` whose
  ``url`` is this sandbox's ``/wf/{id}``; ``POST /api/webForms/bankConnectionUpdate`` with one
  of the caller's ``bank.bankConnectionId`` (else 404) -> 201 ``BANK_CONNECTION_UPDATE``.
* ``GET /api/webForms/{id}``: the caller's own forms only (another user's is 404).
* ``GET /wf/{id}``: the end user's page (``NOT_YET_OPENED`` -> ``IN_PROGRESS``), with complete
  and abort buttons. ``POST /wf/{id}`` with ``action=complete`` (an import creates a bank
  connection in :mod:`.finapi_data`, an update imports newer transactions), ``abort``, or
  ``error`` (no button: ``COMPLETED_WITH_ERROR``, ``BANK_SERVER_REJECTION``); then a 303 to
  the page URL's ``redirectUrl`` query parameter (``errorRedirectUrl`` when the form did not
  complete and that is given), else to the body's ``redirectUrl`` when the form has one.

A form not final expires 20 minutes after creation on the sandbox clock. ``callbacks.finalised``
is POSTed ``{webFormId, status}`` before the page answers, best effort (counted in
``webform_callbacks.sent`` and ``.failed``). For local use, ``http`` URLs are accepted on
loopback and ``profileId`` and ``bank.id`` are not checked.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
from aiohttp import web

from .common import bearer, form_fields, json_error, post_callback
from .finapi import FinApiService
from .finapi_data import FinApiDataService
from .state import SandboxState

__all__ = ["WebFormService"]

FORM_TTL: Final = 20 * 60.0
_FINAL: Final = frozenset({"COMPLETED", "COMPLETED_WITH_ERROR", "EXPIRED", "ABORTED"})
_ACCOUNT_TYPES: Final = frozenset(
    {"BAUSPAREN", "CHECKING", "CREDIT_CARD", "LOAN", "MEMBERSHIP", "SAVINGS", "SECURITY"}
)
# The spec's pattern for redirectUrl and callbacks.finalised.
_HTTPS_URL: Final = re.compile(
    r"https://(www\.)?[-a-zA-Z0-9@:%._+~#=]{1,256}\.[a-zA-Z0-9()]{1,63}\b"
    r"([-a-zA-Z0-9()@:%_+.~#?&/=]*)"
)
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_ACTIONS: Final = {
    "complete": ("COMPLETED", None),
    "abort": ("ABORTED", None),
    "error": ("COMPLETED_WITH_ERROR", "BANK_SERVER_REJECTION"),
}


@attrs.define
class _Form:
    id: str
    user_id: str
    created_at: float
    expires_at: float
    finalised_url: str | None = None
    redirect_url: str | None = None
    type: str = "BANK_CONNECTION_IMPORT"
    name: str | None = None
    target: int | None = None
    status: str = "NOT_YET_OPENED"
    bank_connection_id: int | None = None
    payment_id: int | None = None
    standing_order_id: int | None = None
    error_code: str | None = None


def _timestamp(seconds: float) -> str:
    """Web Form 2.0's ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` (Java's ``Z``: ``+0000``)."""
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _url_problem(value: object, low: int) -> str | None:
    if not isinstance(value, str) or not low <= len(value) <= 2048:
        return f"must be a string of {low} to 2048 characters"
    if _HTTPS_URL.fullmatch(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is not None and parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return None  # sandbox only: local callback targets
    return "must be an https URL"


def _validate(body: dict[str, Any]) -> list[dict[str, str]]:
    """Every field of ``BankConnectionImportDetails`` that breaks the spec."""
    errors: list[dict[str, str]] = []

    def refuse(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    bank = body.get("bank")
    if bank is not None:
        if not isinstance(bank, dict):
            refuse("bank", "must be an object")
        else:
            if bank.get("id") is not None and not _is_int(bank["id"]):
                refuse("bank.id", "must be an integer")
            if bank.get("search") is not None and not isinstance(bank["search"], str):
                refuse("bank.search", "must be a string")
            if bank.get("id") is not None and bank.get("search") is not None:
                refuse("bank", "id and search are mutually exclusive")
    name = body.get("bankConnectionName")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 64):
        refuse("bankConnectionName", "size must be between 1 and 64")
    for flag in ("skipPositionsDownload", "loadOwnerData"):
        if body.get(flag) is not None and not isinstance(body[flag], bool):
            refuse(flag, "must be a boolean")
    days = body.get("maxDaysForDownload")
    if days is not None and (not _is_int(days) or not 0 <= days <= 3650):
        refuse("maxDaysForDownload", "must be an integer from 0 to 3650")
    types = body.get("accountTypes")
    if types is not None:
        if not isinstance(types, list):
            refuse("accountTypes", "must be an array")
        else:
            for index, value in enumerate(types):
                if value not in _ACCOUNT_TYPES:
                    refuse(f"accountTypes[{index}]", f"must be one of {sorted(_ACCOUNT_TYPES)}")
            if len({str(value) for value in types}) != len(types):
                refuse("accountTypes", "must not contain duplicates")
    callbacks = body.get("callbacks")
    if callbacks is not None:
        if not isinstance(callbacks, dict):
            refuse("callbacks", "must be an object")
        elif callbacks.get("finalised") is not None:
            problem = _url_problem(callbacks["finalised"], 0)
            if problem:
                refuse("callbacks.finalised", problem)
    if body.get("redirectUrl") is not None:
        problem = _url_problem(body["redirectUrl"], 1)
        if problem:
            refuse("redirectUrl", problem)
    profile = body.get("profileId")
    if profile is not None and (not isinstance(profile, str) or len(profile) != 36):
        refuse("profileId", "size must be 36")
    return errors


def _page(
    title: str, text: str, *, status: int = 200, form_id: str | None = None, query: str = ""
) -> web.Response:
    buttons = ""
    if form_id is not None:  # the page's query (its return URLs) goes along with the buttons
        action = html.escape(f"/wf/{form_id}" + (f"?{query}" if query else ""))
        buttons = (
            f'<form method="post" action="{action}">'
            '<button type="submit" name="action" value="complete">Complete</button> '
            '<button type="submit" name="action" value="abort">Abort</button>'
            "</form>"
        )
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{buttons}</body></html>"
    )
    return web.Response(status=status, text=document, content_type="text/html")


class WebFormService:
    """Web Form 2.0 for the users of the emulated finAPI mandator."""

    def __init__(self, state: SandboxState, finapi: FinApiService, data: FinApiDataService) -> None:
        self.state = state
        self.finapi = finapi
        self.data = data
        self.forms: dict[str, _Form] = {}
        #: Called with each form the user finished (the background tasks wait for theirs).
        self.on_finished: list[Callable[[_Form], Awaitable[None]]] = []

    def routes(self) -> list[web.RouteDef]:
        """The API routes and the end user's page."""
        return [
            web.post("/api/webForms/bankConnectionImport", self.create_import),
            web.post("/api/webForms/bankConnectionUpdate", self.create_update),
            web.get("/api/webForms/{id}", self.get_form),
            web.get("/wf/{id}", self.open_page),
            web.post("/wf/{id}", self.finish),
        ]

    # -- plumbing ------------------------------------------------------------------------------

    def error(self, request: web.Request, status: int, code: str, description: str) -> web.Response:
        """Web Form 2.0's ``Error`` body."""
        return json_error(
            status,
            {
                "code": code,
                "description": description,
                "timestamp": _timestamp(self.state.clock.now()),
                "endpoint": f"{request.method} {request.path}",
            },
        )

    def current(self, form_id: str) -> _Form | None:
        """The form, moved to ``EXPIRED`` if its time is up."""
        form = self.forms.get(form_id)
        if (
            form is not None
            and form.status not in _FINAL
            and form.expires_at <= self.state.clock.now()
        ):
            form.status = "EXPIRED"
        return form

    @staticmethod
    def public(form: _Form, origin: str) -> dict[str, Any]:
        return {
            "id": form.id,
            "url": f"{origin}/wf/{form.id}",
            "createdAt": _timestamp(form.created_at),
            "expiresAt": _timestamp(form.expires_at),
            "type": form.type,
            "status": form.status,
            # Unset payload fields are left out: the spec's nullable errorCode enum has no null.
            "payload": {
                name: value
                for name, value in (
                    ("bankConnectionId", form.bank_connection_id),
                    ("paymentId", form.payment_id),
                    ("standingOrderId", form.standing_order_id),
                    ("errorCode", form.error_code),
                )
                if value is not None
            },
        }

    async def _call_back(self, form: _Form) -> None:
        if form.finalised_url is None:
            return
        body = {"webFormId": form.id, "status": form.status}
        sent = await post_callback(form.finalised_url, body, self.state.config.callbacks)
        self.state.count(f"webform_callbacks.{'sent' if sent else 'failed'}")

    # -- API -----------------------------------------------------------------------------------

    async def caller(self, request: web.Request) -> tuple[str | None, Any]:
        """The user behind the bearer token (``None``: unauthorized) and the JSON body."""
        user_id = self.finapi.user_for(bearer(request))
        try:
            body = await request.json()
        except ValueError:
            body = None
        return user_id, body

    async def create_import(self, request: web.Request) -> web.Response:
        """``POST /api/webForms/bankConnectionImport`` (user token) -> 201 WebForm."""
        user_id, body = await self.caller(request)
        if user_id is None:
            return self.error(request, 401, "UNAUTHORIZED", "Invalid or missing access token")
        errors = (
            _validate(body)
            if isinstance(body, dict)
            else [{"field": "body", "message": "must be a JSON object"}]
        )
        if errors:
            return self.invalid(request, errors)
        return self._created(request, user_id, body, name=body.get("bankConnectionName"))

    def _created(
        self, request: web.Request, user_id: str, body: dict[str, Any], **fields: Any
    ) -> web.Response:
        callbacks = body.get("callbacks") or {}
        form = self.add_form(
            user_id,
            finalised_url=callbacks.get("finalised") or None,
            redirect_url=body.get("redirectUrl") or None,
            **fields,
        )
        return web.json_response(self.public(form, str(request.url.origin())), status=201)

    def add_form(self, user_id: str, **fields: Any) -> _Form:
        """A new form of ``user_id`` (``_Form``'s fields), valid for 20 minutes."""
        now = self.state.clock.now()
        form = _Form(str(uuid.uuid4()), user_id, now, now + FORM_TTL, **fields)
        self.forms[form.id] = form
        self.state.count("webforms.created")
        return form

    def invalid(self, request: web.Request, errors: list[dict[str, str]]) -> web.Response:
        return json_error(
            400,
            {
                "errors": errors,
                "timestamp": _timestamp(self.state.clock.now()),
                "endpoint": f"{request.method} {request.path}",
            },
        )

    async def create_update(self, request: web.Request) -> web.Response:
        """``POST /api/webForms/bankConnectionUpdate`` (user token) -> 201 WebForm."""
        user_id, body = await self.caller(request)
        if user_id is None:
            return self.error(request, 401, "UNAUTHORIZED", "Invalid or missing access token")
        if not isinstance(body, dict):
            return self.invalid(request, [{"field": "body", "message": "must be a JSON object"}])
        bank = body.get("bank")
        target = bank.get("bankConnectionId") if isinstance(bank, dict) else None
        errors = [e for e in _validate({**body, "bank": None}) if e["field"] != "bank"]
        if not _is_int(target):
            errors.append({"field": "bank.bankConnectionId", "message": "must be an integer"})
        if body.get("importNewAccounts") is not None and not isinstance(
            body["importNewAccounts"], bool
        ):
            errors.append({"field": "importNewAccounts", "message": "must be a boolean"})
        if errors:
            return self.invalid(request, errors)
        if not isinstance(target, int) or not self.data.owns(user_id, target):
            return self.error(request, 404, "NOT_FOUND", "Bank connection not found")
        return self._created(request, user_id, body, type="BANK_CONNECTION_UPDATE", target=target)

    async def get_form(self, request: web.Request) -> web.Response:
        """``GET /api/webForms/{id}`` (user token): the caller's own form."""
        user_id = self.finapi.user_for(bearer(request))
        if user_id is None:
            return self.error(request, 401, "UNAUTHORIZED", "Invalid or missing access token")
        form = self.current(request.match_info["id"])
        if form is None or form.user_id != user_id:
            return self.error(request, 404, "NOT_FOUND", "Web form not found")
        return web.json_response(self.public(form, str(request.url.origin())))

    # -- the end user's page -------------------------------------------------------------------

    async def open_page(self, request: web.Request) -> web.Response:
        """``GET /wf/{id}``: the form's page; opening it starts the form."""
        form = self.current(request.match_info["id"])
        if form is None:
            return _page("Web form not found", "This link is not valid.", status=404)
        if form.status in _FINAL:
            return _page(
                "Web form no longer available", f"This web form is {form.status}.", status=410
            )
        form.status = "IN_PROGRESS"
        if not form.type.startswith("BANK_CONNECTION"):
            title, text = "Authorise a payment", "finAPI sandbox: Complete authorises it."
        else:
            title = "Import a bank connection"
            text = "finAPI sandbox: no bank is contacted. Complete imports a demo bank connection."
        return _page(
            title,
            text,
            form_id=form.id,
            query=request.query_string,
        )

    async def finish(self, request: web.Request) -> web.Response:
        """``POST /wf/{id}`` with ``action=complete|abort|error``: the form's final status."""
        form = self.current(request.match_info["id"])
        if form is None:
            return _page("Web form not found", "This link is not valid.", status=404)
        if form.status in _FINAL:
            return _page(
                "Web form no longer available", f"This web form is {form.status}.", status=410
            )
        returns = {name: request.query.get(name) for name in ("redirectUrl", "errorRedirectUrl")}
        if any(value and _url_problem(value, 1) for value in returns.values()):
            return _page("Bad request", "A return URL must be an https URL.", status=400)
        fields = await form_fields(request) or {}
        outcome = _ACTIONS.get(fields.get("action", ""))
        if outcome is None:
            query = request.query_string
            text = "Choose complete or abort."
            return _page("Bad request", text, status=400, form_id=form.id, query=query)
        form.status, form.error_code = outcome
        if not form.type.startswith("BANK_CONNECTION"):
            pass  # a payment form: its service's on_finished hook makes the payment
        elif form.status == "COMPLETED" and form.target is None:
            form.bank_connection_id = self.data.import_connection(form.user_id, form.name)
        elif form.status == "COMPLETED" and form.target is not None:
            if self.data.owns(form.user_id, form.target):
                self.data.update_connection(form.target)
                form.bank_connection_id = form.target
            else:  # deleted while the form was open
                form.status, form.error_code = "COMPLETED_WITH_ERROR", "INTERNAL_ERROR"
        await self._call_back(form)
        for finished in self.on_finished:
            await finished(form)
        back = returns["redirectUrl"] or form.redirect_url
        if form.status != "COMPLETED":
            back = returns["errorRedirectUrl"] or back
        if back is not None:  # finAPI sends the user back, whatever the outcome
            raise web.HTTPSeeOther(back)
        return _page("Web form finished", f"This web form is {form.status}. You may close it.")
