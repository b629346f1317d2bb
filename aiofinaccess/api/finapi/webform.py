"""finAPI Web Form 2.0: import a bank connection through finAPI's hosted form.

The flow:

1. :meth:`WebForms.import_bank_connection` creates a form for a finAPI user, sent with the
   *user's* access token, and returns a :class:`WebForm` whose ``url`` works once and for
   about 20 minutes.
2. The app sends the end user's browser to ``url``. They pick their bank, log in and do the
   bank's strong customer authentication on finAPI's pages, never the app's.
3. The app learns that the form is finished either from finAPI's POST to the
   ``callbacks.finalised`` URL it gave (finAPI's recommendation), or by polling
   :meth:`WebForms.get` (at most once a second; :meth:`WebForms.wait_until_finished` does it).
4. A ``COMPLETED`` form carries ``payload.bank_connection_id``: the new bank connection in
   finAPI Access. ``COMPLETED_WITH_ERROR`` carries ``payload.error_code`` instead.

Web Form 2.0 is a separate host (:attr:`~aiofinaccess.oauth.providers.Provider.web_form_url`) with
its own error shape, read into :class:`~aiofinaccess.core.error_bodies.WebFormErrorBody`.

The request model checks the spec's limits (lengths, ranges, exclusive fields, URL schemes)
before anything is sent and raises :class:`~aiofinaccess.core.errors.ValidationError` naming the
field. Enumerations (account types) are left to finAPI, which may add values. Timestamps are
kept as finAPI's strings (``yyyy-MM-dd'T'HH:mm:ss.SSSZ``); :attr:`WebForm.created` and
:attr:`WebForm.expires` read them leniently into datetimes.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import attrs

from ...core._json import parse_json
from ...core.errors import ValidationError
from ..models import read_model, to_wire
from ..pipeline import Endpoint, EndUser
from .host import poll_until, web_form_client

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = [
    "AccountType",
    "BankConnectionImport",
    "WebForm",
    "WebFormCallbacks",
    "WebFormPayload",
    "WebFormStatus",
    "WebForms",
    "parse_timestamp",
]

_IMPORT: Final = Endpoint("POST", "/api/webForms/bankConnectionImport", auth="user", expect=(201,))
_GET: Final = Endpoint("GET", "/api/webForms/{web_form_id}", auth="user")

_MAX_URL: Final = 2048
_MAX_NAME: Final = 64
_MAX_DAYS: Final = 3650
_PROFILE_ID_LENGTH: Final = 36
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})


class WebFormStatus(enum.StrEnum):
    """Where a web form is. The last four are final."""

    NOT_YET_OPENED = "NOT_YET_OPENED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERROR = "COMPLETED_WITH_ERROR"
    EXPIRED = "EXPIRED"
    ABORTED = "ABORTED"


_FINAL: Final = frozenset(
    status.value
    for status in (
        WebFormStatus.COMPLETED,
        WebFormStatus.COMPLETED_WITH_ERROR,
        WebFormStatus.EXPIRED,
        WebFormStatus.ABORTED,
    )
)


class AccountType(enum.StrEnum):
    """The account types finAPI knows (for :attr:`BankConnectionImport.account_types`)."""

    BAUSPAREN = "BAUSPAREN"
    CHECKING = "CHECKING"
    CREDIT_CARD = "CREDIT_CARD"
    LOAN = "LOAN"
    MEMBERSHIP = "MEMBERSHIP"
    SAVINGS = "SAVINGS"
    SECURITY = "SECURITY"


def _check_length(field: str, value: str | None, low: int, high: int) -> None:
    if value is not None and not low <= len(value) <= high:
        raise ValidationError(f"{field} must be {low} to {high} characters long")


def _check_url(field: str, value: str | None, low: int) -> None:
    if value is None:
        return
    _check_length(field, value, low, _MAX_URL)
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed IPv6 bracket
        raise ValidationError(f"{field} must be an absolute https URL") from None
    secure = parts.scheme == "https"
    # finAPI takes https only. http to a loopback host is let through for the local sandbox
    # (finAPI could not reach it anyway, and says so with a 400).
    local = parts.scheme == "http" and parts.hostname in _LOOPBACK
    if not (secure or local) or not parts.hostname:
        raise ValidationError(f"{field} must be an absolute https URL")


def _account_types(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if isinstance(value, str):  # tuple("CHECKING") would be ten one-letter types
        raise ValidationError("account_types must be a sequence of types, not one string")
    return None if value is None else tuple(value)


@attrs.frozen(slots=True)
class WebFormCallbacks:
    """Where finAPI reports a finished web form.

    Args:
        finalised: URL that finAPI POSTs ``{"webFormId", "status"}`` to once the form reaches
            a final status (completed, with or without error, or aborted). https only; at
            most 2048 characters. finAPI ignores the answer.
    """

    finalised: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_url("callbacks.finalised", self.finalised, 0)


@attrs.frozen(slots=True)
class BankConnectionImport:
    """What to import (``BankConnectionImportDetails``); every field is optional.

    Args:
        bank_id: finAPI's id of the bank. Without it (or ``bank_search``), the end user
            searches for their bank on the form.
        bank_search: IBAN, BLZ, BIC, name or city of the bank. Excludes ``bank_id``.
        bank_connection_name: A name for the new bank connection, 1 to 64 characters.
        account_types: Which account types to import (:class:`AccountType` values, no
            repeats); all when not given.
        max_days_for_download: Days of transaction history to ask the bank for, 0 to 3650
            (0: as many as the bank gives).
        skip_positions_download: Skip downloading transactions and securities.
        load_owner_data: Also load the owners of the bank connection.
        redirect_url: Where the bank sends the end user back after its login and SCA. Required
            for licensed mandators (``FULLY_LICENSED``, ``AISP``), refused for the others.
        callbacks: Where finAPI reports the finished form.
        profile_id: The branding profile to apply (36 characters).

    Raises:
        ValidationError: A value breaks a limit of the spec; the message names the field.
    """

    bank_id: int | None = None
    bank_search: str | None = None
    bank_connection_name: str | None = None
    account_types: tuple[str, ...] | None = attrs.field(default=None, converter=_account_types)
    max_days_for_download: int | None = None
    skip_positions_download: bool | None = None
    load_owner_data: bool | None = None
    redirect_url: str | None = None
    callbacks: WebFormCallbacks | None = None
    profile_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.bank_id is not None and self.bank_search is not None:
            raise ValidationError("bank_id and bank_search are mutually exclusive")
        _check_length("bank_connection_name", self.bank_connection_name, 1, _MAX_NAME)
        days = self.max_days_for_download
        if days is not None and not 0 <= days <= _MAX_DAYS:
            raise ValidationError(f"max_days_for_download must be 0 to {_MAX_DAYS}")
        types = self.account_types
        if types is not None and len(set(types)) != len(types):
            raise ValidationError("account_types must not repeat a type")
        _check_url("redirect_url", self.redirect_url, 1)
        _check_length("profile_id", self.profile_id, _PROFILE_ID_LENGTH, _PROFILE_ID_LENGTH)

    def as_body(self) -> dict[str, Any]:
        """The request body: camelCase, unset fields left out, the bank nested as ``bank``."""
        body: dict[str, Any] = to_wire(self)
        bank = {
            name: body.pop(key)
            for name, key in (("id", "bankId"), ("search", "bankSearch"))
            if key in body
        }
        if bank:
            body["bank"] = bank
        return body


@attrs.frozen(slots=True)
class WebFormPayload:
    """What a finished web form produced (``Payload``); all ``None`` until then.

    Attributes:
        bank_connection_id: The imported bank connection in finAPI Access.
        payment_id: The payment (payment forms).
        standing_order_id: The standing order (standing-order forms).
        error_code: Why the form ended ``COMPLETED_WITH_ERROR`` (``BANK_SERVER_REJECTION``,
            ``ENTITY_EXISTS``, ``INTERNAL_ERROR``...; an open set).
    """

    bank_connection_id: int | None = None
    payment_id: int | None = None
    standing_order_id: int | None = None
    error_code: str | None = None


def parse_timestamp(value: str | None) -> dt.datetime | None:
    """Read a Web Form timestamp (``2026-01-31T10:00:00.000+0000``; any ISO 8601) leniently.

    A time without an offset is taken as UTC. Returns ``None`` when absent or unreadable.
    """
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@attrs.frozen(slots=True)
class WebForm:
    """A web form (``WebForm``).

    Attributes:
        id: The web form's id.
        url: Where to send the end user (one-time; finAPI accepts the query parameters
            ``redirectUrl``, ``errorRedirectUrl`` and ``customerSupportUrl`` on it).
        status: A :class:`WebFormStatus` value, kept as the string finAPI sent.
        type: ``BANK_CONNECTION_IMPORT`` for forms made here.
        created_at: Creation time as finAPI wrote it (see :attr:`created`).
        expires_at: Expiry time as finAPI wrote it (see :attr:`expires`).
        payload: The result, once final.
    """

    id: str
    url: str
    status: str
    type: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    payload: WebFormPayload = attrs.Factory(WebFormPayload)

    @property
    def finished(self) -> bool:
        """Whether the form reached a final status (completed, with error, expired, aborted)."""
        return self.status in _FINAL

    @property
    def created(self) -> dt.datetime | None:
        """:attr:`created_at` as an aware datetime, if readable."""
        return parse_timestamp(self.created_at)

    @property
    def expires(self) -> dt.datetime | None:
        """:attr:`expires_at` as an aware datetime, if readable."""
        return parse_timestamp(self.expires_at)


def _read_form(body: bytes, what: str) -> WebForm:
    """A WebForm body; a missing or ``null`` payload reads as an empty one."""
    try:
        document = parse_json(body)
    except ValueError:
        return read_model(body, WebForm, what=what)  # raises UnexpectedResponseError
    if isinstance(document, dict) and document.get("payload") is None:
        document.pop("payload", None)
    return read_model(document, WebForm, what=what)


class WebForms:
    """finAPI Web Form 2.0 for the users of one finAPI provider.

    Every call is made with the end user's finAPI access token, which the session manager
    must hold under ``user_id`` (after ``login_with_password`` or ``store_token_set``).

    Args:
        manager: Supplies the user tokens and the HTTP session.
        provider: The name of a registered finAPI provider with a ``web_form_url``.
        timeout: Total seconds per request.

    Raises:
        ConfigurationError: The provider has no Web Form host.
    """

    def __init__(
        self, manager: SessionManager, provider: str = "finapi", *, timeout: float = 30.0
    ) -> None:
        self._clock = manager.clock
        self._api = web_form_client(manager, provider, timeout)

    def __repr__(self) -> str:
        return f"WebForms({self._api!r})"

    async def import_bank_connection(
        self,
        user_id: str,
        details: BankConnectionImport | None = None,
        *,
        end_user: EndUser | None = None,
    ) -> WebForm:
        """Create a web form that imports a bank connection for ``user_id``.

        Args:
            user_id: The finAPI user whose token to use.
            details: What to import; defaults to letting the end user choose everything.
            end_user: The present end user, forwarded as ``PSU-*`` headers.

        Returns:
            The new form (``NOT_YET_OPENED``); send the end user to its ``url``.

        Raises:
            BadRequestError: finAPI refused the body (``WebFormErrorBody`` names the fields).
            UnprocessableEntityError: ``BANK_NOT_SUPPORTED``, ``BANK_NOT_UNIQUE``,
                ``INVALID_REDIRECT_URL``, ``MANDATOR_MISCONFIGURATION``.
            NotFoundError: No such ``profile_id``.
            AuthenticationError: The user's token was refused even after one renewal.
            ReauthorizationRequired: The user's grant is dead.
        """
        body = (details or BankConnectionImport()).as_body()
        response = await self._api.call(_IMPORT, subject=user_id, json=body, end_user=end_user)
        return _read_form(response.body, "web form import")

    async def get(self, user_id: str, web_form_id: str) -> WebForm:
        """The web form ``web_form_id`` of ``user_id``, with its current status.

        Raises:
            NotFoundError: No such form for this user.
            AuthenticationError: The user's token was refused even after one renewal.
            ReauthorizationRequired: The user's grant is dead.
        """
        response = await self._api.call(
            _GET, subject=user_id, path_params={"web_form_id": web_form_id}
        )
        return _read_form(response.body, "web form")

    async def wait_until_finished(
        self,
        user_id: str,
        web_form_id: str,
        *,
        poll_interval: float = 1.0,
        timeout: float = 1200.0,
    ) -> WebForm:
        """Poll :meth:`get` until the form is final, and return it.

        Prefer ``callbacks.finalised`` where the app can receive it; finAPI asks pollers to
        call at most once a second, so keep ``poll_interval`` at 1 or more against finAPI. A
        form expires after about 20 minutes, so the default ``timeout`` covers its life.

        Args:
            user_id: The finAPI user.
            web_form_id: The form's id.
            poll_interval: Seconds between polls (on the manager's clock).
            timeout: Seconds to wait in all.

        Raises:
            TimeoutError: The form was not final within ``timeout``.
            ValidationError: ``poll_interval`` is not positive.
        """
        return await poll_until(
            lambda: self.get(user_id, web_form_id),
            lambda form: form.finished,
            self._clock,
            poll_interval=poll_interval,
            timeout=timeout,
            late=lambda form: (
                f"web form {web_form_id} not finished after {timeout:g} s (status {form.status})"
            ),
        )
