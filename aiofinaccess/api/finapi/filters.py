"""The documented filters of finAPI's list services, checked before anything is sent.

Lists of ids go out repeated (``accountIds=1&accountIds=2``, the v1 spec's ``explode``) or
comma-separated (``accountIds=1,2``, finAPI's prose), as the route table says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Final, Literal

import attrs
from multidict import MultiDict

from ...core.errors import ValidationError

__all__ = [
    "AccountFilters",
    "Direction",
    "TransactionFilters",
    "View",
    "add_ids",
    "add_param",
    "id_list",
]

_MAX_IDS: Final = 1000
_CENT: Final = Decimal("0.01")
Direction = Literal["all", "income", "spending"]
View = Literal["bankView", "userView"]


def id_list(field: str, value: Iterable[int] | None) -> tuple[int, ...] | None:
    """``value`` as a tuple of at most 1000 integer ids (``None`` stays ``None``).

    Raises:
        ValidationError: A string, no ids, too many, or a non-integer.
    """
    if value is None:
        return None
    if isinstance(value, str | bytes):
        raise ValidationError(f"{field} must be a sequence of ids, not one string")
    ids = tuple(value)
    if not ids:
        raise ValidationError(f"{field} must name at least one id (leave it unset for all)")
    if len(ids) > _MAX_IDS:
        raise ValidationError(f"{field} takes at most {_MAX_IDS} ids")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise ValidationError(f"{field} must hold integer ids")
    return ids


def _account_ids(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return id_list("account_ids", value)


def _ids(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return id_list("ids", value)


def _connection_ids(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return id_list("bank_connection_ids", value)


def _strings(field: str, value: Iterable[str] | None) -> tuple[str, ...] | None:
    if isinstance(value, str):  # tuple("id,asc") would be six one-letter entries
        raise ValidationError(f"{field} must be a sequence, not one string")
    return None if value is None else tuple(value)


def _order(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return _strings("order", value)


def _account_types(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return _strings("account_types", value)


def _amount(value: Decimal | int | str | None) -> Decimal | None:
    if value is None:
        return None
    amount = Decimal(str(value))
    if not amount.is_finite() or amount != amount.quantize(_CENT):
        raise ValidationError("amounts take at most two decimal places")
    return amount


@attrs.frozen(slots=True)
class TransactionFilters:
    """The documented filters of ``GET /transactions``; unset ones are not sent.

    Dates are inclusive. ``search`` matches purpose, counterpart fields and end-to-end reference
    (every whitespace-separated term, case-insensitive); ``counterpart`` and ``purpose`` narrow
    it to those fields. ``direction`` is ``income`` (amount >= 0) or ``spending`` (< 0).
    ``order`` entries are ``property[,asc|desc]`` (default ``id,asc``).

    Raises:
        ValidationError: Over 1000 ids, an amount with more than two decimals, an empty list.
    """

    account_ids: tuple[int, ...] | None = attrs.field(default=None, converter=_account_ids)
    ids: tuple[int, ...] | None = attrs.field(default=None, converter=_ids)
    view: View = "bankView"
    search: str | None = None
    counterpart: str | None = None
    purpose: str | None = None
    min_bank_booking_date: dt.date | None = None
    max_bank_booking_date: dt.date | None = None
    min_finapi_booking_date: dt.date | None = None
    max_finapi_booking_date: dt.date | None = None
    min_import_date: dt.date | None = None
    max_import_date: dt.date | None = None
    min_amount: Decimal | None = attrs.field(default=None, converter=_amount)
    max_amount: Decimal | None = attrs.field(default=None, converter=_amount)
    direction: Direction | None = None
    is_new: bool | None = None
    is_potential_duplicate: bool | None = None
    is_adjusting_entry: bool | None = None
    order: tuple[str, ...] | None = attrs.field(default=None, converter=_order)

    def __attrs_post_init__(self) -> None:
        if self.view not in ("bankView", "userView"):
            raise ValidationError("view must be bankView or userView")
        if self.direction not in (None, "all", "income", "spending"):
            raise ValidationError("direction must be all, income or spending")

    def query(self, id_lists: str) -> MultiDict[str]:
        """The query parameters, camelCase, in finAPI's formats."""
        query: MultiDict[str] = MultiDict(view=self.view)
        add_ids(query, "accountIds", self.account_ids, id_lists)
        add_ids(query, "ids", self.ids, id_lists)
        for name, value in (
            ("search", self.search),
            ("counterpart", self.counterpart),
            ("purpose", self.purpose),
            ("minBankBookingDate", self.min_bank_booking_date),
            ("maxBankBookingDate", self.max_bank_booking_date),
            ("minFinapiBookingDate", self.min_finapi_booking_date),
            ("maxFinapiBookingDate", self.max_finapi_booking_date),
            ("minImportDate", self.min_import_date),
            ("maxImportDate", self.max_import_date),
            ("minAmount", self.min_amount),
            ("maxAmount", self.max_amount),
            ("direction", self.direction),
            ("isNew", self.is_new),
            ("isPotentialDuplicate", self.is_potential_duplicate),
            ("isAdjustingEntry", self.is_adjusting_entry),
        ):
            add_param(query, name, value)
        for entry in self.order or ():
            query.add("order", entry)
        return query


@attrs.frozen(slots=True)
class AccountFilters:
    """The documented filters of ``GET /accounts``; unset ones are not sent.

    ``account_types`` uses Access's spelling (``Checking``, ``Savings``...); ``search`` matches
    name, IBAN and account numbers.
    """

    ids: tuple[int, ...] | None = attrs.field(default=None, converter=_ids)
    bank_connection_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_connection_ids
    )
    account_types: tuple[str, ...] | None = attrs.field(default=None, converter=_account_types)
    search: str | None = None
    min_balance: Decimal | None = attrs.field(default=None, converter=_amount)
    max_balance: Decimal | None = attrs.field(default=None, converter=_amount)

    def query(self, id_lists: str) -> MultiDict[str]:
        """The query parameters."""
        query: MultiDict[str] = MultiDict()
        add_ids(query, "ids", self.ids, id_lists)
        add_ids(query, "bankConnectionIds", self.bank_connection_ids, id_lists)
        if self.account_types:
            if id_lists == "comma":
                query.add("accountTypes", ",".join(self.account_types))
            else:
                for account_type in self.account_types:
                    query.add("accountTypes", account_type)
        add_param(query, "search", self.search)
        add_param(query, "minBalance", self.min_balance)
        add_param(query, "maxBalance", self.max_balance)
        return query


def add_param(query: MultiDict[str], name: str, value: object) -> None:
    """Add ``value`` in finAPI's form (``true``/``false``, ``YYYY-MM-DD``); skip ``None``."""
    if value is None:
        return
    if isinstance(value, bool):
        query.add(name, "true" if value else "false")
    elif isinstance(value, dt.date):
        query.add(name, value.isoformat())
    else:
        query.add(name, str(value))


def add_ids(query: MultiDict[str], name: str, ids: tuple[int, ...] | None, style: str) -> None:
    """Add ids repeated (``style="repeat"``) or comma-separated (``"comma"``)."""
    if not ids:
        return
    if style == "comma":
        query.add(name, ",".join(map(str, ids)))
    else:
        for value in ids:
            query.add(name, str(value))
