"""finAPI Access data models (bank connections, accounts, balances, transactions) and their reader.

finAPI v1 and v2 send the same resources in slightly different shapes, and the reader here
takes both without being told which:

* dates: v2 writes ``YYYY-MM-DD``; v1 writes ``YYYY-MM-DD HH:MM:SS.SSS`` in German time. Only
  the date part is kept.
* timestamps (``importDate``, ``latestCommonBalanceTimestamp``): v2 writes RFC 3339 with an
  offset; v1 writes ``YYYY-MM-DD HH:MM:SS.SSS`` in German time, read as ``Europe/Berlin``.
* amounts are read from the JSON text straight into :class:`~decimal.Decimal` (never through a
  binary float).
* booleans must be JSON booleans (``"false"`` is not read as true).
* an interface names itself ``interface`` (v1) or ``bankingInterface`` (v2).
* v1-only fields (``accountTypeId``, ``bankId``...) and any field finAPI adds later are ignored,
  but kept in each model's ``raw`` mapping.

A body that cannot be read raises :class:`~aiofinaccess.core.errors.UnexpectedResponseError`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar, cast
from zoneinfo import ZoneInfo

import attrs
import cattrs
import cattrs.gen

from ...core.errors import UnexpectedResponseError
from ..json_ready import JsonReady
from ..models import camel

__all__ = [
    "BankConnection",
    "BankConnectionInterface",
    "BankConsent",
    "DailyBalance",
    "DailyBalances",
    "FinApiAccount",
    "FinApiBank",
    "FinApiTransaction",
    "Paging",
    "TransactionPage",
    "UpdateResult",
    "read_finapi",
]

_T = TypeVar("_T")
#: finAPI v1 writes local German time without an offset.
GERMAN_TIME: Final = ZoneInfo("Europe/Berlin")


def _raw(value: Mapping[str, Any]) -> str:
    return f"<{len(value)} fields>"


@attrs.frozen(slots=True)
class Paging(JsonReady):
    """Where a page sits: ``page`` of ``page_count`` (from 1), ``total_count`` items in all."""

    page: int
    per_page: int
    page_count: int
    total_count: int


@attrs.frozen(slots=True)
class FinApiBank(JsonReady):
    """The bank of a bank connection (v2 nests it; v1 sends the full bank object)."""

    id: int
    name: str | None = None
    bic: str | None = None
    blz: str | None = None
    location: str | None = None
    is_test_bank: bool | None = None


@attrs.frozen(slots=True)
class BankConsent(JsonReady):
    """The consent an interface holds at the bank for reading accounts (``aisConsent``).

    Attributes:
        status: ``PRESENT`` (finAPI holds one; the bank may still refuse it) or ``NOT_PRESENT``
            (the next update must acquire one, possibly with the user); an open set.
        expires_at: When the bank ends it (v1: German time; aware either way).
    """

    status: str
    expires_at: dt.datetime | None = None


@attrs.frozen(slots=True)
class UpdateResult(JsonReady):
    """How the last update of a connection or interface ended (``UpdateResult``).

    Attributes:
        result: ``OK`` (finAPI logged in at the bank; single accounts may still have failed),
            ``BANK_SERVER_REJECTION`` or ``INTERNAL_SERVER_ERROR``; an open set.
        timestamp: When it ran (aware).
        error_type: ``BUSINESS`` (the bank's message, for the user) or ``TECHNICAL``.
        error_message: The bank's or finAPI's message, when there is one.
    """

    result: str
    timestamp: dt.datetime
    error_type: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """Whether finAPI could log in at the bank."""
        return self.result == "OK"


@attrs.frozen(slots=True)
class BankConnectionInterface(JsonReady):
    """One way finAPI reaches the bank for a connection (``BankConnectionInterface``).

    Attributes:
        interface: ``XS2A``, ``FINTS_SERVER`` or ``WEB_SCRAPER``; an open set.
        ais_consent: The bank's consent, for interfaces that use one (XS2A); ``None`` otherwise.
        user_action_required: finAPI stopped automatic updates of this interface until the
            user updates it through a web form.
        last_manual_update: The last update the app or user started; ``None`` if never.
        last_auto_update: The last update of finAPI's batch; ``None`` if never.
        max_days_for_download: Days of history downloaded on import (0: all).
    """

    interface: str
    ais_consent: BankConsent | None = None
    user_action_required: bool = False
    last_manual_update: UpdateResult | None = None
    last_auto_update: UpdateResult | None = None
    max_days_for_download: int | None = None


@attrs.frozen(slots=True)
class BankConnection(JsonReady):
    """A bank connection: what one Web Form import created.

    Attributes:
        update_status: ``IN_PROGRESS`` while finAPI downloads data, then ``READY``.
        categorization_status: ``PENDING`` / ``READY`` (finAPI's background categorization).
        account_ids: The accounts of this connection.
        interfaces: The interfaces connected, each with its consent and last updates
            (:func:`~aiofinaccess.finapi.connection_state` reads them).
        last_manual_update: v1 only: the connection's last manual update (v2 has it per
            interface).
        last_auto_update: v1 only: the connection's last batch update.
        raw: Every field finAPI sent.
    """

    id: int
    name: str | None = None
    update_status: str | None = None
    categorization_status: str | None = None
    account_ids: tuple[int, ...] = ()
    bank: FinApiBank | None = None
    interfaces: tuple[BankConnectionInterface, ...] = ()
    last_manual_update: UpdateResult | None = None
    last_auto_update: UpdateResult | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=_raw)


@attrs.frozen(slots=True)
class FinApiAccount(JsonReady):
    """A bank account in finAPI Access.

    ``account_type`` is finAPI's Access spelling (``Checking``, ``Savings``, ``CreditCard``,
    ``Security``, ``Loan``, ``Membership``, ``Bausparen``), unlike the Web Form's upper case.
    """

    id: int
    bank_connection_id: int
    account_name: str | None = None
    iban: str | None = None
    account_number: str | None = None
    sub_account_number: str | None = None
    account_holder_name: str | None = None
    account_currency: str | None = None
    account_type: str | None = None
    balance: Decimal | None = None
    overdraft: Decimal | None = None
    overdraft_limit: Decimal | None = None
    available_funds: Decimal | None = None
    is_new: bool = False
    is_seized: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=_raw)


@attrs.frozen(slots=True)
class FinApiTransaction(JsonReady):
    """A transaction. ``amount`` is negative for spending.

    Attributes:
        finapi_booking_date: The date finAPI books it on (moves towards ``bank_booking_date``
            for transactions the bank books in the future).
        import_date: When finAPI imported it (aware; the incremental sync orders by it).
        parent_id: The original transaction of a split part (``userView``).
        raw: Every field finAPI sent (category, labels, SEPA references...).
    """

    id: int
    account_id: int
    amount: Decimal
    currency: str | None = None
    value_date: dt.date | None = None
    bank_booking_date: dt.date | None = None
    finapi_booking_date: dt.date | None = None
    import_date: dt.datetime | None = None
    purpose: str | None = None
    counterpart_name: str | None = None
    counterpart_iban: str | None = None
    counterpart_bic: str | None = None
    counterpart_account_number: str | None = None
    counterpart_bank_name: str | None = None
    end_to_end_reference: str | None = None
    type: str | None = None
    parent_id: int | None = None
    is_new: bool = False
    is_potential_duplicate: bool = False
    is_adjusting_entry: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=_raw)


@attrs.frozen(slots=True)
class TransactionPage(JsonReady):
    """One page of ``GET /transactions``; the totals cover every page of the query."""

    transactions: tuple[FinApiTransaction, ...]
    paging: Paging
    income: Decimal = Decimal(0)
    spending: Decimal = Decimal(0)
    balance: Decimal = Decimal(0)


@attrs.frozen(slots=True)
class DailyBalance(JsonReady):
    """The balance at the end of ``date`` over the regarded accounts (``spending`` is positive)."""

    date: dt.date
    balance: Decimal
    income: Decimal = Decimal(0)
    spending: Decimal = Decimal(0)
    internal_adjusting_entries: Decimal = Decimal(0)
    transactions: tuple[int, ...] = ()


@attrs.frozen(slots=True)
class DailyBalances(JsonReady):
    """Daily balances of a date range.

    Only balances dated before ``latest_common_balance_timestamp`` are reliable; ``None``
    means none are (finAPI's own warning).
    """

    balances: tuple[DailyBalance, ...]
    latest_common_balance_timestamp: dt.datetime | None = None


def parse_date(value: Any) -> dt.date:
    """``YYYY-MM-DD`` (v2) or ``YYYY-MM-DD HH:MM:SS.SSS`` (v1): the date part."""
    return dt.date.fromisoformat(str(value)[:10])


def parse_instant(value: Any) -> dt.datetime:
    """RFC 3339 (v2), or v1's offset-less German time; always aware."""
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=GERMAN_TIME)


def parse_amount(value: Any) -> Decimal:
    """A JSON number (already a Decimal, or an int) as a finite Decimal; not bools or NaN."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise TypeError("not a number")
    amount = Decimal(str(value))
    if not amount.is_finite():
        raise ValueError("not a finite number")
    return amount


def parse_bool(value: Any) -> bool:
    """A JSON boolean, nothing else (``bool("false")`` would be true)."""
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return value


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(dt.date, lambda value, _type: parse_date(value))
    converter.register_structure_hook(dt.datetime, lambda value, _type: parse_instant(value))
    converter.register_structure_hook(Decimal, lambda value, _type: parse_amount(value))
    converter.register_structure_hook(bool, lambda value, _type: parse_bool(value))

    def structure_factory(cls: type) -> Callable[[Any, Any], Any]:
        renames: dict[str, Any] = {
            field.name: cattrs.gen.override(rename=camel(field.name))
            for field in attrs.fields(cls)
            if field.name != "raw"
        }
        return cattrs.gen.make_dict_structure_fn(
            cls, converter, raw=cattrs.gen.override(omit=True), **renames
        )

    converter.register_structure_hook_factory(attrs.has, structure_factory)
    interface = structure_factory(BankConnectionInterface)

    def structure_interface(value: Any, cls: Any) -> Any:
        if isinstance(value, dict) and "interface" not in value and "bankingInterface" in value:
            value = {**value, "interface": value["bankingInterface"]}  # v2's name
        return interface(value, cls)

    converter.register_structure_hook(BankConnectionInterface, structure_interface)
    return converter


_CONVERTER: Final = _make_converter()


def decode(body: bytes, what: str) -> Any:
    """JSON with exact decimals."""
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError:
        raise UnexpectedResponseError(f"{what}: the answer is not JSON") from None


def read_finapi(document: Any, cls: type[_T], *, what: str) -> _T:
    """Read decoded JSON into ``cls``; a model with a ``raw`` field keeps the document there.

    Raises:
        UnexpectedResponseError: Not the shape of ``cls``.
    """
    try:
        model = _CONVERTER.structure(document, cls)
    except Exception as exc:  # cattrs raises several types; all mean "unreadable"
        raise UnexpectedResponseError(
            f"{what}: unexpected response ({type(exc).__name__})"
        ) from None
    if (
        isinstance(document, dict)
        and attrs.has(cls)
        and any(field.name == "raw" for field in attrs.fields(cls))
    ):
        model = cast("_T", attrs.evolve(cast("Any", model), raw=document))
    return model


def read_list(document: Any, key: str, cls: type[_T], *, what: str) -> list[_T]:
    """The list under ``key`` of a finAPI list body, each item read into ``cls``."""
    items = document.get(key) if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise UnexpectedResponseError(f"{what}: expected a '{key}' list")
    return [read_finapi(item, cls, what=what) for item in items]
