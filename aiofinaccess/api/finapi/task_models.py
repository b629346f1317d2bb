"""The shapes of Web Form 2.0's background update tasks, and the pure reading of one task.

Requests (:class:`BackgroundUpdate`, :class:`TaskCallbacks`) check the spec's limits before
anything is sent and raise :class:`~aiofinaccess.core.errors.ValidationError` naming the field.
A :class:`Task` body reads into the model or raises
:class:`~aiofinaccess.core.errors.UnexpectedResponseError`; :func:`outcome_of` turns a task into
:class:`UpdateCompleted`, :class:`UpdateFailed`, :class:`WebFormRequired` or ``None`` (still
running, or a status finAPI added later).
"""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs
import cattrs
import cattrs.gen

from ...core._json import parse_json
from ...core.errors import UnexpectedResponseError, ValidationError
from ..models import camel, to_wire
from ..pipeline import EndUser
from .webform import _account_types, _check_length, _check_url

__all__ = [
    "BackgroundUpdate",
    "Task",
    "TaskCallbacks",
    "TaskPayload",
    "TaskStatus",
    "UpdateCompleted",
    "UpdateFailed",
    "UpdateOutcome",
    "WebFormInfo",
    "WebFormRequired",
    "outcome_of",
    "read_task",
]

_PROFILE_ID_LENGTH: Final = 36
_SAVED_SETTINGS: Final = frozenset({"CREDENTIALS", "DEFAULT_TWO_STEP_PROCEDURE"})


class TaskStatus(enum.StrEnum):
    """A task's statuses (``TaskStatus``); the last two are final."""

    NOT_YET_STARTED = "NOT_YET_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    WEB_FORM_REQUIRED = "WEB_FORM_REQUIRED"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERROR = "COMPLETED_WITH_ERROR"


@attrs.frozen(slots=True)
class TaskCallbacks:
    """Where finAPI reports a task (https, at most 2048 characters; finAPI ignores the answer).

    Args:
        finalised: POSTed once the task is ``COMPLETED`` or ``COMPLETED_WITH_ERROR``.
        web_form_required: POSTed when the update needs the user (``WEB_FORM_REQUIRED``).
    """

    finalised: str | None = None
    web_form_required: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_url("callbacks.finalised", self.finalised, 0)
        _check_url("callbacks.web_form_required", self.web_form_required, 0)


def _settings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        raise ValidationError("manage_saved_settings must be a sequence, not one string")
    return None if value is None else tuple(value)


@attrs.frozen(slots=True)
class BackgroundUpdate:
    """What to update (``BankConnectionUpdateTaskDetails``).

    Args:
        bank_connection_id: The connection.
        import_new_accounts: Also import accounts the user opened since.
        account_types: Which new accounts to import (with ``import_new_accounts``).
        skip_positions_download: Skip transactions and securities.
        load_owner_data: Load the owners too (web scraper only).
        manage_saved_settings: Show the form to edit ``CREDENTIALS`` or the
            ``DEFAULT_TWO_STEP_PROCEDURE`` (for example after wrong credentials).
        callbacks: Where finAPI reports the task.
        profile_id: The branding profile of a form the update may need (36 characters).
        redirect_url: Where the bank sends the user back (licensed mandators only).

    Raises:
        ValidationError: A value breaks a limit of the spec; the message names the field.
    """

    bank_connection_id: int
    import_new_accounts: bool | None = None
    account_types: tuple[str, ...] | None = attrs.field(default=None, converter=_account_types)
    skip_positions_download: bool | None = None
    load_owner_data: bool | None = None
    manage_saved_settings: tuple[str, ...] | None = attrs.field(default=None, converter=_settings)
    callbacks: TaskCallbacks | None = None
    profile_id: str | None = None
    redirect_url: str | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("account_types", "manage_saved_settings"):
            values = getattr(self, name)
            if values is not None and len(set(values)) != len(values):
                raise ValidationError(f"{name} must not repeat a value")
        unknown = set(self.manage_saved_settings or ()) - _SAVED_SETTINGS
        if unknown:
            raise ValidationError(f"manage_saved_settings: unknown {sorted(unknown)}")
        _check_length("profile_id", self.profile_id, _PROFILE_ID_LENGTH, _PROFILE_ID_LENGTH)
        _check_url("redirect_url", self.redirect_url, 1)

    def as_body(self, end_user: EndUser | None) -> dict[str, Any]:
        """The task's body; ``end_user`` becomes ``userMetadata`` (all three fields needed)."""
        body: dict[str, Any] = to_wire(self)
        if end_user is not None:
            missing = [name for name, value in attrs.asdict(end_user).items() if not value]
            if missing:
                raise ValidationError(
                    f"end_user needs {', '.join(missing)} for a background update"
                )
            body["userMetadata"] = {
                "ipAddress": end_user.ip_address,
                "deviceOs": end_user.device_os,
                "userAgent": end_user.user_agent,
            }
        return body

    def as_form_body(self) -> dict[str, Any]:
        """The deprecated update form's body (``BankConnectionUpdateDetails``).

        Raises:
            ValidationError: A field the form does not take is set.
        """
        for name in ("manage_saved_settings", "redirect_url"):
            if getattr(self, name) is not None:
                raise ValidationError(f"{name} is not a field of the update web form")
        if self.callbacks is not None and self.callbacks.web_form_required is not None:
            raise ValidationError("callbacks.web_form_required is not a field of the update form")
        body: dict[str, Any] = to_wire(attrs.evolve(self, callbacks=None))
        body["bank"] = {"bankConnectionId": body.pop("bankConnectionId")}
        if self.callbacks is not None and self.callbacks.finalised is not None:
            body["callbacks"] = {"finalised": self.callbacks.finalised}
        return body


@attrs.frozen(slots=True)
class WebFormInfo:
    """The web form a task needs (``WebFormInfo``): send the user to ``url`` (one-time)."""

    id: str
    url: str
    status: str


@attrs.frozen(slots=True)
class TaskPayload:
    """What a task is about and produced (``TaskPayload``).

    Attributes:
        bank_connection_id: The connection being updated.
        web_form: The form the user must fill in (``WEB_FORM_REQUIRED``, and after).
        error_code: Why it ended ``COMPLETED_WITH_ERROR`` (``BANK_SERVER_REJECTION``,
            ``INVALID_TOKEN``, ``INTERNAL_ERROR``...; an open set).
    """

    bank_connection_id: int | None = None
    web_form: WebFormInfo | None = None
    error_code: str | None = None


@attrs.frozen(slots=True)
class Task:
    """A background task (``Task``); ``status`` is a :class:`TaskStatus` value, kept as sent."""

    id: str
    status: str
    type: str | None = None
    created_at: str | None = None
    payload: TaskPayload = attrs.Factory(TaskPayload)


@attrs.frozen(slots=True)
class UpdateCompleted:
    """The connection was updated without the user."""

    bank_connection_id: int | None
    task: Task


@attrs.frozen(slots=True)
class UpdateFailed:
    """The update ended with an error (``error_code``, when finAPI names one)."""

    bank_connection_id: int | None
    error_code: str | None
    task: Task


@attrs.frozen(slots=True)
class WebFormRequired:
    """The bank wants the user: send them to :attr:`url` to renew the connection.

    Attributes:
        web_form: The form (``id``, ``url``, ``status``).
        task: The task waiting for it; ``None`` with ``UpdateRoutes(via="web_form")``.
    """

    bank_connection_id: int | None
    web_form: WebFormInfo
    task: Task | None = None

    @property
    def url(self) -> str:
        """Where to send the user (one-time, about 20 minutes)."""
        return self.web_form.url


#: What an update ends in: :class:`UpdateCompleted`, :class:`UpdateFailed` or
#: :class:`WebFormRequired`.
UpdateOutcome = UpdateCompleted | UpdateFailed | WebFormRequired


def outcome_of(task: Task) -> UpdateOutcome | None:
    """What ``task`` says, or ``None`` while it runs (any status not named final here).

    Raises:
        UnexpectedResponseError: ``WEB_FORM_REQUIRED`` without the form.
    """
    connection = task.payload.bank_connection_id
    if task.status == TaskStatus.COMPLETED:
        return UpdateCompleted(connection, task)
    if task.status == TaskStatus.COMPLETED_WITH_ERROR:
        return UpdateFailed(connection, task.payload.error_code, task)
    if task.status == TaskStatus.WEB_FORM_REQUIRED:
        if task.payload.web_form is None:
            raise UnexpectedResponseError(f"task {task.id}: WEB_FORM_REQUIRED without a web form")
        return WebFormRequired(connection, task.payload.web_form, task)
    return None


def _exactly(kind: type) -> Any:
    """A hook taking JSON values of ``kind`` only (no ``str(None)``, no ``int(True)``)."""

    def structure(value: Any, _type: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"not a {kind.__name__}")
        return value

    return structure


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(str, _exactly(str))
    converter.register_structure_hook(int, _exactly(int))

    def structure_factory(cls: type) -> Any:
        renames: dict[str, Any] = {
            f.name: cattrs.gen.override(rename=camel(f.name)) for f in attrs.fields(cls)
        }
        return cattrs.gen.make_dict_structure_fn(cls, converter, **renames)

    converter.register_structure_hook_factory(attrs.has, structure_factory)
    return converter


_CONVERTER: Final = _make_converter()


def read_task(body: bytes | Any, what: str) -> Task:
    """A Task body; a ``null`` payload, web form or error code reads as absent.

    Raises:
        UnexpectedResponseError: Not JSON, or not a task (strings and integers as JSON has them).
    """
    try:
        document = parse_json(body) if isinstance(body, bytes | bytearray) else body
    except ValueError:
        raise UnexpectedResponseError(f"{what}: the answer is not JSON") from None
    if isinstance(document, dict):
        document = {key: value for key, value in document.items() if value is not None}
        payload = document.get("payload")
        if isinstance(payload, dict):
            document["payload"] = {
                key: value for key, value in payload.items() if value is not None
            }
    try:
        return _CONVERTER.structure(document, Task)
    except Exception as exc:  # cattrs raises several types; all mean "unreadable"
        raise UnexpectedResponseError(
            f"{what}: unexpected response ({type(exc).__name__})"
        ) from None
