"""finAPI Web Form 2.0's background update tasks, emulated, and the controls of a connection's life.

* ``POST /api/tasks/backgroundUpdate`` (the user's token) with one of the caller's
  ``bankConnectionId`` (else 404 ``NOT_FOUND``; 423 ``LOCKED`` while another task of it runs)
  -> 201 ``Task`` ``NOT_YET_STARTED``. The task runs by itself: ``IN_PROGRESS``, then after
  ``finapi_task_seconds`` (real seconds) its outcome:

  - the connection needs the user (its consent ended on the sandbox clock, or
    ``userActionRequired`` was set) -> ``WEB_FORM_REQUIRED`` with an update form in
    ``payload.webForm``; the task ends with the form (``COMPLETED`` when the user completes
    it, which renews the consent; ``COMPLETED_WITH_ERROR`` when they abort or it expires);
  - otherwise ``COMPLETED``: newer transactions, ``lastManualUpdate`` OK, the consent as it was.

  ``callbacks.webFormRequired`` and ``callbacks.finalised`` get a ``TaskCallback``
  (``taskId``, ``status``, ``webForm``), best effort (``task_callbacks.sent`` / ``.failed``).
* ``GET /api/tasks/{id}``: the caller's own tasks only (another user's is 404).
* ``POST /_sandbox/finapi/bankConnections/{id}`` (control, no token): ``userActionRequired``
  (bool), ``consentExpiresIn`` (seconds from now on the sandbox clock) and ``nextTask``
  (``"error"``: the next task ends ``COMPLETED_WITH_ERROR`` with ``BANK_SERVER_REJECTION``).
  The same from Python: :meth:`TaskService.steer`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

import attrs
from aiohttp import web

from .common import bearer, post_callback
from .finapi import FinApiService
from .finapi_data import FinApiDataService
from .state import SandboxState
from .webform import WebFormService, _Form, _is_int, _timestamp, _url_problem, _validate

__all__ = ["TaskService"]

_RUNNING: Final = frozenset({"NOT_YET_STARTED", "IN_PROGRESS", "WEB_FORM_REQUIRED"})
_SAVED_SETTINGS: Final = frozenset({"CREDENTIALS", "DEFAULT_TWO_STEP_PROCEDURE"})
_METADATA: Final = (("ipAddress", 64), ("deviceOs", 1024), ("userAgent", 1024))


@attrs.define
class _Task:
    id: str
    user_id: str
    connection_id: int
    created_at: float
    origin: str
    callbacks: dict[str, str]
    status: str = "NOT_YET_STARTED"
    form_id: str | None = None
    error_code: str | None = None


def _problems(body: dict[str, Any]) -> list[dict[str, str]]:
    """Every field of ``BankConnectionUpdateTaskDetails`` that breaks the spec."""
    errors = [e for e in _validate({**body, "bank": None}) if e["field"] != "bank"]

    def refuse(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    if not _is_int(body.get("bankConnectionId")):
        refuse("bankConnectionId", "must be an integer")
    if body.get("importNewAccounts") is not None and not isinstance(
        body["importNewAccounts"], bool
    ):
        refuse("importNewAccounts", "must be a boolean")
    callbacks = body.get("callbacks")
    if isinstance(callbacks, dict) and callbacks.get("webFormRequired") is not None:
        problem = _url_problem(callbacks["webFormRequired"], 0)
        if problem:
            refuse("callbacks.webFormRequired", problem)
    settings = body.get("manageSavedSettings")
    if settings is not None and (
        not isinstance(settings, list)
        or not set(map(str, settings)) <= _SAVED_SETTINGS
        or len(set(map(str, settings))) != len(settings)
    ):
        refuse("manageSavedSettings", f"must be distinct values of {sorted(_SAVED_SETTINGS)}")
    metadata = body.get("userMetadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            refuse("userMetadata", "must be an object")
        else:
            for name, longest in _METADATA:
                value = metadata.get(name)
                if not isinstance(value, str) or len(value) > longest:
                    refuse(f"userMetadata.{name}", f"must be a string of at most {longest}")
    return errors


class TaskService:
    """Background update tasks for the users of the emulated finAPI mandator."""

    def __init__(
        self,
        state: SandboxState,
        finapi: FinApiService,
        data: FinApiDataService,
        forms: WebFormService,
    ) -> None:
        self.state = state
        self.finapi = finapi
        self.data = data
        self.forms = forms
        self.tasks: dict[str, _Task] = {}
        self._failing: set[int] = set()  # connections whose next task fails
        self._runners: set[asyncio.Task[None]] = set()
        forms.on_finished.append(self._form_finished)
        finapi.on_user_deleted.append(self._forget_user)

    def routes(self) -> list[web.RouteDef]:
        """The API routes and the control route."""
        return [
            web.post("/api/tasks/backgroundUpdate", self.create),
            web.get("/api/tasks/{id}", self.get),
            web.post("/_sandbox/finapi/bankConnections/{id}", self.control),
        ]

    async def close(self, _app: web.Application) -> None:
        """Stop the tasks still running (the application's cleanup)."""
        for runner in list(self._runners):
            runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)

    # -- steering ------------------------------------------------------------------------------

    def steer(
        self,
        connection_id: int,
        *,
        user_action_required: bool | None = None,
        consent_expires_in: float | None = None,
        next_task: str | None = None,
    ) -> None:
        """Change a connection's life at once (see the module docstring)."""
        interface = self.data.connections[connection_id].interface
        if user_action_required is not None:
            interface.action_required = user_action_required
        if consent_expires_in is not None:
            interface.consent_expires = self.state.clock.now() + consent_expires_in
        if next_task == "error":
            self._failing.add(connection_id)

    async def control(self, request: web.Request) -> web.Response:
        """``POST /_sandbox/finapi/bankConnections/{id}``."""
        connection_id = int(request.match_info["id"]) if request.match_info["id"].isdigit() else 0
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if connection_id not in self.data.connections:
            return web.json_response({"error": "no such bank connection"}, status=404)
        flag, seconds, nxt = (
            body.get(k) for k in ("userActionRequired", "consentExpiresIn", "nextTask")
        )
        if (
            (flag is not None and not isinstance(flag, bool))
            or (
                seconds is not None
                and (isinstance(seconds, bool) or not isinstance(seconds, int | float))
            )
            or nxt not in (None, "error")
        ):
            return web.json_response(
                {
                    "error": "userActionRequired is a boolean, consentExpiresIn seconds, "
                    'nextTask "error"'
                },
                status=400,
            )
        self.steer(
            connection_id, user_action_required=flag, consent_expires_in=seconds, next_task=nxt
        )
        return web.json_response({"ok": True})

    # -- API -----------------------------------------------------------------------------------

    def _json(self, task: _Task) -> dict[str, Any]:
        payload: dict[str, Any] = {"bankConnectionId": task.connection_id}
        form = None if task.form_id is None else self.forms.forms.get(task.form_id)
        if form is not None:
            public = self.forms.public(form, task.origin)
            payload["webForm"] = {key: public[key] for key in ("id", "url", "status")}
        if task.error_code is not None:  # the spec's nullable enum has no null: left out
            payload["errorCode"] = task.error_code
        return {
            "id": task.id,
            "createdAt": _timestamp(task.created_at),
            "type": "BANK_CONNECTION_UPDATE",
            "status": task.status,
            "payload": payload,
        }

    async def create(self, request: web.Request) -> web.Response:
        """``POST /api/tasks/backgroundUpdate`` (user token) -> 201 Task."""
        user_id, body = await self.forms.caller(request)
        if user_id is None:
            return self.forms.error(request, 401, "UNAUTHORIZED", "Invalid or missing access token")
        if not isinstance(body, dict):
            return self.forms.invalid(
                request, [{"field": "body", "message": "must be a JSON object"}]
            )
        problems = _problems(body)
        if problems:
            return self.forms.invalid(request, problems)
        target = body["bankConnectionId"]
        if not self.data.owns(user_id, target):
            return self.forms.error(request, 404, "NOT_FOUND", "Bank connection not found")
        if any(
            t.connection_id == target and self._current(t).status in _RUNNING
            for t in self.tasks.values()
        ):
            return self.forms.error(request, 423, "LOCKED", "The bank connection is being updated")
        callbacks = {
            k: v for k, v in (body.get("callbacks") or {}).items() if isinstance(v, str) and v
        }
        task = _Task(
            str(uuid.uuid4()),
            user_id,
            target,
            self.state.clock.now(),
            str(request.url.origin()),
            callbacks,
        )
        self.tasks[task.id] = task
        self.state.count("tasks.created")
        runner = asyncio.get_running_loop().create_task(self._run(task))
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        return web.json_response(self._json(task), status=201)

    async def get(self, request: web.Request) -> web.Response:
        """``GET /api/tasks/{id}`` (user token): the caller's own task."""
        user_id = self.finapi.user_for(bearer(request))
        if user_id is None:
            return self.forms.error(request, 401, "UNAUTHORIZED", "Invalid or missing access token")
        task = self.tasks.get(request.match_info["id"])
        if task is None or task.user_id != user_id:
            return self.forms.error(request, 404, "NOT_FOUND", "Task not found")
        return web.json_response(self._json(self._current(task)))

    # -- the task's life -----------------------------------------------------------------------

    def _current(self, task: _Task) -> _Task:
        """The task, ended if the form it waits for expired."""
        if task.status == "WEB_FORM_REQUIRED" and task.form_id is not None:
            form = self.forms.current(task.form_id)
            if form is None or form.status == "EXPIRED":
                task.status = "COMPLETED_WITH_ERROR"
        return task

    async def _run(self, task: _Task) -> None:
        await asyncio.sleep(0)
        task.status = "IN_PROGRESS"
        await asyncio.sleep(self.state.config.finapi_task_seconds)
        connection = self.data.connections.get(task.connection_id)
        if connection is None:  # deleted meanwhile
            task.status, task.error_code = "COMPLETED_WITH_ERROR", "INTERNAL_ERROR"
        elif task.connection_id in self._failing:
            self._failing.discard(task.connection_id)
            connection.interface.last_manual = ("BANK_SERVER_REJECTION", self.state.clock.now())
            task.status, task.error_code = "COMPLETED_WITH_ERROR", "BANK_SERVER_REJECTION"
        elif connection.interface.needs_user(self.state.clock.now()):
            form = self.forms.add_form(
                task.user_id, type="BANK_CONNECTION_UPDATE", target=task.connection_id
            )
            task.form_id, task.status = form.id, "WEB_FORM_REQUIRED"
            await self._call_back(task, "webFormRequired")
            return
        else:
            self.data.update_connection(task.connection_id, user_present=False)
            task.status = "COMPLETED"
        await self._call_back(task, "finalised")

    async def _form_finished(self, form: _Form) -> None:
        for task in self.tasks.values():
            if task.form_id == form.id and task.status == "WEB_FORM_REQUIRED":
                task.status = "COMPLETED" if form.status == "COMPLETED" else "COMPLETED_WITH_ERROR"
                await self._call_back(task, "finalised")

    async def _call_back(self, task: _Task, which: str) -> None:
        url = task.callbacks.get(which)
        if url is None:
            return
        body = self._json(task)
        callback: dict[str, Any] = {"taskId": task.id, "status": task.status}
        if "webForm" in body["payload"]:
            callback["webForm"] = body["payload"]["webForm"]
        sent = await post_callback(url, callback, self.state.config.callbacks)
        self.state.count(f"task_callbacks.{'sent' if sent else 'failed'}")

    def _forget_user(self, user_id: str) -> None:
        for task_id in [t.id for t in self.tasks.values() if t.user_id == user_id]:
            del self.tasks[task_id]
