"""finAPI's callbacks as data: their kinds, their parsed bodies (claims, not facts), and what
receiving one did; pure but for :func:`read_bounded`.

:mod:`~aiofinaccess.integrations.finapi_callbacks` receives them.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, TypeAlias

import attrs

from ..core._json import parse_json
from ..core.errors import CallbackTooLarge, MalformedCallback
from ..session.connection_events import ConnectionInfo

__all__ = [
    "MAX_BODY",
    "Callback",
    "CallbackKind",
    "CallbackResult",
    "RuleNotification",
    "TaskCallback",
    "UserSynchronization",
    "WebFormCallback",
    "parse_callback",
    "read_bounded",
]

#: Bytes a callback body may have: finAPI's are a few hundred.
MAX_BODY: Final = 16 * 1024


class CallbackKind(enum.StrEnum):
    """Which callback; the value is its route's last segment."""

    WEB_FORM = "web-form"
    TASK = "task"
    NOTIFICATION = "notification"
    USER_SYNC = "user-sync"


@attrs.frozen(slots=True)
class WebFormCallback:
    """``{"webFormId", "status"}``: a web form reached a final status (claimed)."""

    web_form_id: str
    status: str


@attrs.frozen(slots=True)
class TaskCallback:
    """``TaskCallback``: a task needs a web form or ended (claimed)."""

    task_id: str
    status: str


@attrs.frozen(slots=True)
class RuleNotification:
    """A notification rule fired (claimed); finAPI's other fields are left unread."""

    rule_id: int
    trigger_event: str
    callback_handle: str


@attrs.frozen(slots=True)
class UserSynchronization:
    """``{"userId", "event"}``: finAPI says a user changed (``DELETED``) (claimed)."""

    user_id: str = attrs.field(repr=False)
    event: str


Callback: TypeAlias = WebFormCallback | TaskCallback | RuleNotification | UserSynchronization


def _text(document: Mapping[str, Any], name: str, kind: CallbackKind) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value or len(value) > 512:
        raise MalformedCallback(f"{kind} callback: {name} must be a string")
    return value


def _id(document: Mapping[str, Any], name: str, kind: CallbackKind) -> str:
    value = _text(document, name, kind)
    if value in (".", ".."):  # a dot segment: the read-back's URL would name another resource
        raise MalformedCallback(f"{kind} callback: {name} must be an id, not {value!r}")
    return value


def parse_callback(kind: CallbackKind, body: bytes, *, limit: int = MAX_BODY) -> Callback:
    """Read a callback's body (pure); nothing in it is trusted yet.

    Raises:
        CallbackTooLarge: ``body`` has more than ``limit`` bytes.
        MalformedCallback: Not a JSON object with the kind's fields.
    """
    if len(body) > limit:
        raise CallbackTooLarge(f"{kind} callback: body over {limit} bytes")
    try:
        document = parse_json(body)
    except ValueError:
        raise MalformedCallback(f"{kind} callback: the body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedCallback(f"{kind} callback: the body is not a JSON object")
    if kind is CallbackKind.WEB_FORM:
        return WebFormCallback(_id(document, "webFormId", kind), _text(document, "status", kind))
    if kind is CallbackKind.TASK:
        return TaskCallback(_id(document, "taskId", kind), _text(document, "status", kind))
    if kind is CallbackKind.NOTIFICATION:
        rule_id = document.get("notificationRuleId")
        if not isinstance(rule_id, int) or isinstance(rule_id, bool) or rule_id < 1:
            raise MalformedCallback(f"{kind} callback: notificationRuleId must be an id")
        trigger, handle = (_text(document, n, kind) for n in ("triggerEvent", "callbackHandle"))
        return RuleNotification(rule_id, trigger, handle)
    return UserSynchronization(_text(document, "userId", kind), _text(document, "event", kind))


@attrs.frozen(slots=True)
class CallbackResult:
    """What a callback did.

    Attributes:
        kind: Which callback.
        subject: The user it was about, if known.
        confirmed: Whether the API bore it out; ``False``: nothing changed.
        connections: The connections observed, as the registry now holds them.
        detail: Why, in a few words (never a token).
    """

    kind: CallbackKind
    subject: str | None = attrs.field(repr=False)
    confirmed: bool
    connections: tuple[ConnectionInfo, ...] = ()
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        """The answer's body: whether it was confirmed, nothing more (whoever replays a
        genuine body learns nothing of the user's connections). A user synchronization's says
        not even that: it would tell anyone whether finAPI knows a user id (finAPI reads no
        answer)."""
        if self.kind is CallbackKind.USER_SYNC:
            return {"received": True}
        return {"confirmed": self.confirmed}


async def read_bounded(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body from ``chunks``, read no further than ``limit`` bytes.

    Raises:
        CallbackTooLarge: It has more.
    """
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise CallbackTooLarge(f"callback body over {limit} bytes")
    return bytes(body)
