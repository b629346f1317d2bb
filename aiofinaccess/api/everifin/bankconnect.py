"""Everifin BankConnect: accounts, balances, transactions, and incremental sync.

Everifin's exact paths are not public, so they live in one route table,
:class:`BankConnectRoutes`, relative to the provider's ``api_url`` (``{api}/v1`` by default;
``Everifin.at(..., api_prefix=...)`` moves the prefix, and ``attrs.evolve`` on the table moves
any single route). Answers come in Everifin's ``{data, meta}`` envelope; refusals in its
``{errors: [{code, title, detail}], meta}`` shape become typed errors. Every call is made with
the end user's own access token, renewed by the session manager (a 401 mid-iteration is
renewed and replayed transparently).

>>> bank = BankConnect(manager)  # doctest: +SKIP
>>> async for tx in bank.transactions("alice", account_id, booking_date_from=date(2026, 1, 1)):
...     upsert(tx)  # doctest: +SKIP

:class:`TransactionSync` is Everifin's advice for incremental sync, packaged: remember the
highest ``lastUpdated`` seen and ask again from it plus one millisecond.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import attrs

from ...core._json import parse_json
from ...core.errors import UnexpectedResponseError, ValidationError
from ..json_ready import JsonReady
from ..models import format_instant, read_model
from ..pipeline import ApiClient, Endpoint, EndUser, everifin_context

if TYPE_CHECKING:
    from ...oauth.transport import HttpResponse
    from ...session.manager import SessionManager

__all__ = [
    "Account",
    "Balance",
    "BankConnect",
    "BankConnectRoutes",
    "Transaction",
    "TransactionSync",
]

_T = TypeVar("_T")
_MAX_PER_PAGE: Final = 500
_ONE_MS: Final = dt.timedelta(milliseconds=1)


@attrs.frozen(slots=True)
class BankConnectRoutes:
    """Where each BankConnect operation lives, relative to the provider's ``api_url``."""

    accounts: Endpoint = Endpoint("GET", "/accounts")
    activate_accounts: Endpoint = Endpoint("POST", "/accounts/activate")
    account: Endpoint = Endpoint("GET", "/accounts/{account_id}")
    balances: Endpoint = Endpoint("GET", "/accounts/{account_id}/balances")
    transactions: Endpoint = Endpoint("GET", "/accounts/{account_id}/transactions")
    transaction: Endpoint = Endpoint("GET", "/transactions/{transaction_id}")
    refresh_transactions: Endpoint = Endpoint(
        "POST", "/transactions/refresh", expect=(200, 202, 204)
    )


def _raw(value: Mapping[str, Any]) -> str:
    return f"<{len(value)} fields>"


@attrs.frozen(slots=True)
class Account(JsonReady):
    """A connected bank account. ``raw`` keeps every field Everifin sent."""

    id: str
    iban: str | None = None
    name: str | None = None
    currency: str | None = None
    bank_code: str | None = None
    bank_name: str | None = None
    owner_name: str | None = None
    active: bool = True
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=_raw)


@attrs.frozen(slots=True)
class Balance(JsonReady):
    """One balance of an account (``CLBD`` booked, ``CLAV`` available...)."""

    type: str
    amount: Decimal
    currency: str
    reference_date: dt.date | None = None


@attrs.frozen(slots=True)
class Transaction(JsonReady):
    """A transaction. Banks may change booked ones: upsert by ``id``."""

    id: str
    account_id: str
    amount: Decimal
    currency: str
    last_updated: dt.datetime
    created_at: dt.datetime | None = None
    booking_date: dt.date | None = None
    value_date: dt.date | None = None
    status: str | None = None
    credit_debit_indicator: str | None = None
    counterparty_name: str | None = None
    remittance_information: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=_raw)


def envelope(response: HttpResponse, what: str) -> tuple[Any, Mapping[str, Any]]:
    try:
        document = parse_json(response.body)
    except ValueError:
        raise UnexpectedResponseError(f"{what}: the answer is not JSON") from None
    if not isinstance(document, dict) or "data" not in document:
        raise UnexpectedResponseError(f"{what}: the answer has no data envelope")
    meta = document.get("meta")
    return document["data"], meta if isinstance(meta, dict) else {}


def _item(data: Any, cls: type[_T], what: str) -> _T:
    model = read_model(data, cls, what=what)
    if isinstance(model, Account | Transaction) and isinstance(data, dict):
        return cast("_T", attrs.evolve(model, raw=data))
    return model


def _items(data: Any, cls: type[_T], what: str) -> list[_T]:
    if not isinstance(data, list):
        raise UnexpectedResponseError(f"{what}: expected a list")
    return [_item(entry, cls, what) for entry in data]


class BankConnect:
    """Everifin BankConnect for the end users of one registered Everifin provider.

    Args:
        manager: Holds each user's tokens (from the authorization-code flow).
        provider: The Everifin provider's name in ``manager``.
        routes: The route table; override single routes with ``attrs.evolve``.
        timeout: Default seconds per request.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "everifin",
        *,
        routes: BankConnectRoutes | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.routes = routes or BankConnectRoutes()
        self._api = ApiClient(manager, provider, context_headers=everifin_context, timeout=timeout)

    def __repr__(self) -> str:
        return f"BankConnect(base_url={str(self._api.base_url)!r})"

    async def accounts(self, user: str, *, end_user: EndUser | None = None) -> list[Account]:
        """The user's connected accounts."""
        response = await self._api.call(self.routes.accounts, subject=user, end_user=end_user)
        return _items(envelope(response, "accounts")[0], Account, "accounts")

    async def activate_accounts(
        self, user: str, account_ids: Iterable[str], *, end_user: EndUser | None = None
    ) -> list[Account]:
        """Activate accounts so their data can be read."""
        ids = list(account_ids)
        if not ids:
            raise ValidationError("account_ids must name at least one account")
        response = await self._api.call(
            self.routes.activate_accounts, subject=user, json={"accountIds": ids}, end_user=end_user
        )
        return _items(envelope(response, "activate accounts")[0], Account, "activate accounts")

    async def account(
        self, user: str, account_id: str, *, end_user: EndUser | None = None
    ) -> Account:
        """One account's details."""
        response = await self._api.call(
            self.routes.account,
            subject=user,
            path_params={"account_id": account_id},
            end_user=end_user,
        )
        return _item(envelope(response, "account")[0], Account, "account")

    async def balances(
        self, user: str, account_id: str, *, end_user: EndUser | None = None
    ) -> list[Balance]:
        """An account's balances."""
        response = await self._api.call(
            self.routes.balances,
            subject=user,
            path_params={"account_id": account_id},
            end_user=end_user,
        )
        return _items(envelope(response, "balances")[0], Balance, "balances")

    async def transactions(
        self,
        user: str,
        account_id: str,
        *,
        updated_from: dt.datetime | None = None,
        created_from: dt.datetime | None = None,
        booking_date_from: dt.date | None = None,
        booking_date_to: dt.date | None = None,
        per_page: int = 100,
        end_user: EndUser | None = None,
    ) -> AsyncIterator[Transaction]:
        """Iterate over an account's transactions, fetching page after page.

        Args:
            updated_from: Only transactions changed at or after this instant.
            created_from: Only transactions created at or after this instant.
            booking_date_from: First booking date (skips history on a first download).
            booking_date_to: Last booking date.
            per_page: Page size, 1 to 500.
        """
        if not 1 <= per_page <= _MAX_PER_PAGE:
            raise ValidationError(f"per_page must be 1 to {_MAX_PER_PAGE}")
        filters: dict[str, str] = {"countPerPage": str(per_page)}
        if updated_from is not None:
            filters["updatedFrom"] = format_instant(updated_from)
        if created_from is not None:
            filters["createdFrom"] = format_instant(created_from)
        if booking_date_from is not None:
            filters["bookingDateFrom"] = booking_date_from.isoformat()
        if booking_date_to is not None:
            filters["bookingDateTo"] = booking_date_to.isoformat()
        page = 1
        while True:
            response = await self._api.call(
                self.routes.transactions,
                subject=user,
                path_params={"account_id": account_id},
                params={**filters, "page": str(page)},
                end_user=end_user,
            )
            data, meta = envelope(response, "transactions")
            for transaction in _items(data, Transaction, "transactions"):
                yield transaction
            pagination = meta.get("pagination")
            last = pagination.get("last") if isinstance(pagination, dict) else None
            if not data or not isinstance(last, int) or page >= last:
                return
            page += 1

    async def transaction(
        self, user: str, transaction_id: str, *, end_user: EndUser | None = None
    ) -> Transaction:
        """One transaction's details."""
        response = await self._api.call(
            self.routes.transaction,
            subject=user,
            path_params={"transaction_id": transaction_id},
            end_user=end_user,
        )
        return _item(envelope(response, "transaction")[0], Transaction, "transaction")

    async def refresh_transactions(self, user: str, *, end_user: EndUser | None = None) -> None:
        """Ask Everifin to download new transactions for all the user's active accounts now."""
        await self._api.call(self.routes.refresh_transactions, subject=user, end_user=end_user)


@attrs.define
class TransactionSync:
    """Incremental sync of one account, as Everifin advises.

    Each :meth:`changes` run yields every transaction changed since the last one (new ones and
    ones the bank modified; upsert them by ``id``) and moves :attr:`cursor` to the highest
    ``last_updated`` seen. Persist ``cursor`` between runs; the next run asks from it + 1 ms.

    Args:
        bank: The BankConnect client.
        user: The end user's id.
        account_id: The account.
        cursor: The highest ``last_updated`` already processed, or ``None`` to start over.
        booking_date_from: Skip history older than this on the first download (Everifin stores
            the newest items first, so old items can carry newer ``lastUpdated`` values).
    """

    bank: BankConnect
    user: str
    account_id: str
    cursor: dt.datetime | None = None
    booking_date_from: dt.date | None = None

    async def changes(self, *, per_page: int = 100) -> AsyncIterator[Transaction]:
        """Yield what changed since :attr:`cursor`, advancing it as items are yielded."""
        since = None if self.cursor is None else self.cursor + _ONE_MS
        async for transaction in self.bank.transactions(
            self.user,
            self.account_id,
            updated_from=since,
            booking_date_from=self.booking_date_from,
            per_page=per_page,
        ):
            yield transaction
            if self.cursor is None or transaction.last_updated > self.cursor:
                self.cursor = transaction.last_updated
