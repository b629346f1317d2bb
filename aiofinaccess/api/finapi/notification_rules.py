"""finAPI Access notification rules: create, list, read and delete a user's rules.

A rule asks finAPI to POST a notification to the client's ``userNotificationCallbackUrl``
(set in the client configuration) when its ``trigger_event`` happens during finAPI's automatic
batch update; the notification carries the rule's ``callbackHandle``. finAPI signs nothing, so
a receiver matches the handle to a rule it made and confirms it by reading the rule back
(:class:`~aiofinaccess.integrations.finapi_callbacks.FinApiCallbacks` does; its
``rule_handle(user)`` makes a handle that names the user).

>>> rules = NotificationRules(manager)  # doctest: +SKIP
>>> rule = await rules.create("alice", TriggerEvent.BANK_LOGIN_ERROR, callback_handle=handle)

Every call is made with the user's own token; routes are relative to the provider's
``api_url`` like :class:`~aiofinaccess.finapi.FinApiData`'s (the v1 spec documents them under
``/api/v1``).
"""

from __future__ import annotations

import builtins
import enum
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import attrs

from ...core.errors import UnexpectedResponseError, ValidationError
from ..pipeline import ApiClient, Endpoint, finapi_context
from .models import decode, read_finapi, read_list

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = ["NotificationRule", "NotificationRuleRoutes", "NotificationRules", "TriggerEvent"]

#: The spec's pattern and limit for ``callbackHandle``.
_HANDLE: Final = re.compile(r"[A-Za-z0-9\u00a1-\u02af &(){}\[\].:,;?!+\-_$@#~`^\u20ac/=%\"]*")
_HANDLE_MAX: Final = 512


class TriggerEvent(enum.StrEnum):
    """What fires a rule (``triggerEvent``); each one's ``params`` are in finAPI's docs."""

    NEW_ACCOUNT_BALANCE = "NEW_ACCOUNT_BALANCE"
    NEW_TRANSACTIONS = "NEW_TRANSACTIONS"
    BANK_LOGIN_ERROR = "BANK_LOGIN_ERROR"
    FOREIGN_MONEY_TRANSFER = "FOREIGN_MONEY_TRANSFER"
    LOW_ACCOUNT_BALANCE = "LOW_ACCOUNT_BALANCE"
    HIGH_TRANSACTION_AMOUNT = "HIGH_TRANSACTION_AMOUNT"
    CATEGORY_CASH_FLOW = "CATEGORY_CASH_FLOW"
    NEW_TERMS_AND_CONDITIONS = "NEW_TERMS_AND_CONDITIONS"


@attrs.frozen(slots=True)
class NotificationRule:
    """A rule as finAPI keeps it (``NotificationRule``); ``trigger_event`` is kept as sent."""

    id: int
    trigger_event: str
    callback_handle: str | None = None
    include_details: bool = False
    params: Mapping[str, str] = attrs.field(factory=dict, converter=dict)


@attrs.frozen(slots=True)
class NotificationRuleRoutes:
    """Where each operation lives, relative to the provider's ``api_url``."""

    rules: Endpoint = Endpoint("GET", "/notificationRules")
    rule: Endpoint = Endpoint("GET", "/notificationRules/{rule_id}")
    create: Endpoint = Endpoint("POST", "/notificationRules", expect=(201,))
    delete: Endpoint = Endpoint("DELETE", "/notificationRules/{rule_id}", expect=(200, 204))
    delete_all: Endpoint = Endpoint("DELETE", "/notificationRules")


def _check_handle(handle: str | None) -> None:
    if handle is None:
        return
    if len(handle) > _HANDLE_MAX or _HANDLE.fullmatch(handle) is None:
        raise ValidationError(
            f"callback_handle must be at most {_HANDLE_MAX} of finAPI's allowed characters"
        )


class NotificationRules:
    """The notification rules of one finAPI provider's users (user tokens).

    Args:
        manager: Holds each user's finAPI tokens.
        provider: The finAPI provider's name in ``manager``.
        routes: The route table; override single routes with ``attrs.evolve``.
        timeout: Default seconds per request.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "finapi",
        *,
        routes: NotificationRuleRoutes | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.routes = routes or NotificationRuleRoutes()
        self._api = ApiClient(manager, provider, context_headers=finapi_context, timeout=timeout)

    def __repr__(self) -> str:
        return f"NotificationRules(base_url={str(self._api.base_url)!r})"

    async def create(
        self,
        user: str,
        trigger_event: TriggerEvent | str,
        *,
        callback_handle: str | None = None,
        params: Mapping[str, str] | None = None,
        include_details: bool = False,
    ) -> NotificationRule:
        """Create a rule for ``user`` (201).

        Args:
            trigger_event: What fires it.
            callback_handle: Sent back in each notification (at most 512 characters of
                finAPI's set); match notifications by it.
            params: The trigger's parameters (``{"accountIds": "1,2"}``...), strings.
            include_details: Whether notifications carry finAPI's encrypted details.

        Raises:
            ValidationError: An unknown trigger, or a handle finAPI would refuse.
            BadRequestError: finAPI refused the parameters.
        """
        try:
            event = TriggerEvent(trigger_event)
        except ValueError:
            raise ValidationError(f"unknown trigger event {trigger_event!r}") from None
        _check_handle(callback_handle)
        body: dict[str, object] = {"triggerEvent": str(event), "includeDetails": include_details}
        if callback_handle is not None:
            body["callbackHandle"] = callback_handle
        if params:
            body["params"] = {str(key): str(value) for key, value in params.items()}
        response = await self._api.call(self.routes.create, subject=user, json=body)
        return self._read(response.body, "create notification rule")

    async def list(
        self, user: str, *, trigger_event: TriggerEvent | str | None = None
    ) -> list[NotificationRule]:
        """The user's rules (only those of ``trigger_event`` when given)."""
        params = {} if trigger_event is None else {"triggerEvent": str(trigger_event)}
        response = await self._api.call(self.routes.rules, subject=user, params=params)
        document = decode(response.body, "notification rules")
        what = "notification rules"
        return read_list(document, "notificationRules", NotificationRule, what=what)

    async def get(self, user: str, rule_id: int) -> NotificationRule:
        """One rule of ``user``.

        Raises:
            NotFoundError: ``user`` has no such rule.
        """
        response = await self._api.call(
            self.routes.rule, subject=user, path_params={"rule_id": str(rule_id)}
        )
        return self._read(response.body, "notification rule")

    async def delete(self, user: str, rule_id: int) -> None:
        """Delete one rule.

        Raises:
            NotFoundError: ``user`` has no such rule.
            LockedError: finAPI's batch update is running (423): try again later.
        """
        await self._api.call(
            self.routes.delete, subject=user, path_params={"rule_id": str(rule_id)}
        )

    async def delete_all(self, user: str) -> builtins.list[int]:
        """Delete every rule of ``user``; returns the deleted rules' ids.

        Raises:
            LockedError: finAPI's batch update is running (423): try again later.
        """
        response = await self._api.call(self.routes.delete_all, subject=user)
        document = decode(response.body, "deleted notification rules")
        ids = document.get("identifiers") if isinstance(document, dict) else None
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise UnexpectedResponseError("deleted notification rules: expected 'identifiers'")
        return ids

    @staticmethod
    def _read(body: bytes, what: str) -> NotificationRule:
        document = decode(body, what)
        if isinstance(document, dict) and document.get("params") is None:
            document["params"] = {}
        return read_finapi(document, NotificationRule, what=what)
