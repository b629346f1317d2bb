"""finAPI Access data after the Web Form: bank connections, accounts, daily balances, transactions.

Every operation is one :class:`~aiofinaccess.api.pipeline.Endpoint` in :class:`FinApiDataRoutes`,
relative to the provider's ``api_url`` (``/api/v2`` by default, ``/api/v1`` with
``FinApi.at(..., api_version="v1")``), and is sent with the end user's own access token, which
the session manager renews (a 401 in the middle of a long iteration is renewed once and
replayed). ``PSU-*`` headers come from :class:`~aiofinaccess.api.pipeline.EndUser`. Refusals are
typed (:class:`~aiofinaccess.core.errors.NotFoundError` for ``UNKNOWN_ENTITY``,
:class:`~aiofinaccess.core.errors.BadRequestError` for ``ILLEGAL_PAGE_SIZE``...).

>>> data = FinApiData(manager)  # doctest: +SKIP
>>> async for tx in data.transactions("alice", TransactionFilters(account_ids=(7,))):
...     upsert(tx)  # doctest: +SKIP

What stays UNCERTAIN about v2 (the generated v2 client documents the operations but no v2 spec
file is public) is configurable here: every path is a route in :class:`FinApiDataRoutes`, and
``id_lists`` chooses how lists of ids travel (``accountIds=1&accountIds=2`` as the v1 spec's
``explode`` says, or ``accountIds=1,2`` as finAPI's prose says; no source says which finAPI
takes, the sandbox takes both).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Literal, TypeVar

import attrs
from multidict import MultiDict

from ...core.errors import ValidationError
from ..pipeline import ApiClient, Endpoint, EndUser, finapi_context
from .filters import AccountFilters, TransactionFilters, add_ids, add_param, id_list
from .models import (
    BankConnection,
    DailyBalance,
    DailyBalances,
    FinApiAccount,
    FinApiTransaction,
    Paging,
    TransactionPage,
    decode,
    read_finapi,
    read_list,
)

if TYPE_CHECKING:
    from ...session.manager import SessionManager

# The filters live in finapi_filters and are re-exported here, where they are used.
__all__ = ["AccountFilters", "FinApiData", "FinApiDataRoutes", "TransactionFilters"]

_T = TypeVar("_T")
_MAX_PER_PAGE: Final = 500


@attrs.frozen(slots=True)
class FinApiDataRoutes:
    """Where each operation lives, relative to the provider's ``api_url``. Override single routes
    with ``attrs.evolve`` (updates: :class:`~aiofinaccess.finapi.UpdateRoutes`).

    Attributes:
        id_lists: ``"repeat"`` sends id lists as repeated parameters (the v1 spec's
            ``explode: true``), ``"comma"`` as one comma-separated value (finAPI's prose).
    """

    bank_connections: Endpoint = Endpoint("GET", "/bankConnections")
    bank_connection: Endpoint = Endpoint("GET", "/bankConnections/{connection_id}")
    delete_bank_connection: Endpoint = Endpoint(
        "DELETE", "/bankConnections/{connection_id}", expect=(200, 204)
    )
    accounts: Endpoint = Endpoint("GET", "/accounts")
    account: Endpoint = Endpoint("GET", "/accounts/{account_id}")
    daily_balances: Endpoint = Endpoint("GET", "/accounts/dailyBalances")
    transactions: Endpoint = Endpoint("GET", "/transactions")
    transaction: Endpoint = Endpoint("GET", "/transactions/{transaction_id}")
    id_lists: Literal["repeat", "comma"] = "repeat"


def _per_page(per_page: int) -> str:
    if not 1 <= per_page <= _MAX_PER_PAGE:
        raise ValidationError(f"per_page must be 1 to {_MAX_PER_PAGE}")
    return str(per_page)


class FinApiData:
    """finAPI Access data for the users of one registered finAPI provider.

    Args:
        manager: Holds each user's finAPI tokens (``login_with_password`` or
            ``Users.create_and_login``).
        provider: The finAPI provider's name in ``manager``.
        routes: The route table; override single routes with ``attrs.evolve``.
        timeout: Default seconds per request.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "finapi",
        *,
        routes: FinApiDataRoutes | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.routes = routes or FinApiDataRoutes()
        self._api = ApiClient(manager, provider, context_headers=finapi_context, timeout=timeout)

    def __repr__(self) -> str:
        return f"FinApiData(base_url={str(self._api.base_url)!r})"

    # -- bank connections -------------------------------------------------------------------

    async def bank_connections(
        self, user: str, ids: Iterable[int] | None = None, *, end_user: EndUser | None = None
    ) -> list[BankConnection]:
        """The user's bank connections (all, or those in ``ids``)."""
        query: MultiDict[str] = MultiDict()
        add_ids(query, "ids", id_list("ids", ids), self.routes.id_lists)
        response = await self._api.call(
            self.routes.bank_connections, subject=user, params=query, end_user=end_user
        )
        return read_list(
            decode(response.body, "bank connections"),
            "connections",
            BankConnection,
            what="bank connections",
        )

    async def bank_connection(
        self, user: str, connection_id: int, *, end_user: EndUser | None = None
    ) -> BankConnection:
        """One bank connection.

        Raises:
            NotFoundError: No such connection for this user (``UNKNOWN_ENTITY``).
        """
        return await self._one(
            self.routes.bank_connection, user, connection_id, BankConnection, end_user
        )

    async def delete_bank_connection(
        self, user: str, connection_id: int, *, end_user: EndUser | None = None
    ) -> None:
        """Delete a bank connection with its accounts and transactions (irreversible).

        Raises:
            NotFoundError: No such connection.
            LockedError: finAPI is importing or updating it (423).
        """
        await self._api.call(
            self.routes.delete_bank_connection,
            subject=user,
            path_params={"connection_id": str(connection_id)},
            end_user=end_user,
        )

    # -- accounts -----------------------------------------------------------------------------

    async def accounts(
        self,
        user: str,
        filters: AccountFilters | None = None,
        *,
        end_user: EndUser | None = None,
    ) -> list[FinApiAccount]:
        """The user's accounts, narrowed by ``filters``."""
        query = (filters or AccountFilters()).query(self.routes.id_lists)
        response = await self._api.call(
            self.routes.accounts, subject=user, params=query, end_user=end_user
        )
        return read_list(
            decode(response.body, "accounts"), "accounts", FinApiAccount, what="accounts"
        )

    async def account(
        self, user: str, account_id: int, *, end_user: EndUser | None = None
    ) -> FinApiAccount:
        """One account.

        Raises:
            NotFoundError: No such account for this user.
        """
        return await self._one(self.routes.account, user, account_id, FinApiAccount, end_user)

    async def daily_balances(
        self,
        user: str,
        *,
        account_ids: Iterable[int] | None = None,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        with_projection: bool | None = None,
        per_page: int = _MAX_PER_PAGE,
        end_user: EndUser | None = None,
    ) -> DailyBalances:
        """Daily balances over the accounts (all by default), every page fetched.

        finAPI defaults ``end_date`` to today and ``start_date`` to a month before it; the
        range may span at most 366 days (finAPI answers 422 otherwise).
        """
        if start_date and end_date and (end_date - start_date).days > 366:
            raise ValidationError("the date range may span at most 366 days")
        query: MultiDict[str] = MultiDict(perPage=_per_page(per_page))
        add_ids(query, "accountIds", id_list("account_ids", account_ids), self.routes.id_lists)
        add_param(query, "startDate", start_date)
        add_param(query, "endDate", end_date)
        add_param(query, "withProjection", with_projection)
        balances: list[DailyBalance] = []
        latest = None
        async for document in self._pages(self.routes.daily_balances, user, query, end_user):
            balances += read_list(document, "dailyBalances", DailyBalance, what="daily balances")
            latest = document.get("latestCommonBalanceTimestamp")
        return DailyBalances(
            tuple(balances),
            None if latest is None else read_finapi(latest, dt.datetime, what="daily balances"),
        )

    # -- transactions -------------------------------------------------------------------------

    async def transactions_page(
        self,
        user: str,
        filters: TransactionFilters | None = None,
        *,
        page: int = 1,
        per_page: int = _MAX_PER_PAGE,
        end_user: EndUser | None = None,
    ) -> TransactionPage:
        """One page of transactions, with finAPI's paging and totals."""
        if page < 1:
            raise ValidationError("page counts from 1")
        query = (filters or TransactionFilters()).query(self.routes.id_lists)
        query.update(page=str(page), perPage=_per_page(per_page))
        response = await self._api.call(
            self.routes.transactions, subject=user, params=query, end_user=end_user
        )
        return _transaction_page(decode(response.body, "transactions"))

    async def transactions(
        self,
        user: str,
        filters: TransactionFilters | None = None,
        *,
        per_page: int = _MAX_PER_PAGE,
        end_user: EndUser | None = None,
    ) -> AsyncGenerator[FinApiTransaction, None]:
        """Iterate over the user's transactions page after page (finAPI's ``page``/``perPage``).

        Keep the default order (``id,asc``) or one by import date for long iterations: new
        imports then land on later pages instead of shifting earlier ones.
        """
        query = (filters or TransactionFilters()).query(self.routes.id_lists)
        query.add("perPage", _per_page(per_page))
        async for document in self._pages(self.routes.transactions, user, query, end_user):
            for transaction in _transaction_page(document).transactions:
                yield transaction

    async def transaction(
        self, user: str, transaction_id: int, *, end_user: EndUser | None = None
    ) -> FinApiTransaction:
        """One transaction.

        Raises:
            NotFoundError: No such transaction for this user.
        """
        return await self._one(
            self.routes.transaction, user, transaction_id, FinApiTransaction, end_user
        )

    async def _one(
        self,
        endpoint: Endpoint,
        user: str,
        entity_id: int,
        cls: type[_T],
        end_user: EndUser | None,
    ) -> _T:
        """``GET`` one entity; the route's single path parameter takes ``entity_id``."""
        name = endpoint.path.rsplit("{", 1)[1].rstrip("}")
        response = await self._api.call(
            endpoint, subject=user, path_params={name: str(entity_id)}, end_user=end_user
        )
        return read_finapi(decode(response.body, endpoint.path), cls, what=endpoint.path)

    async def _pages(
        self,
        endpoint: Endpoint,
        user: str,
        query: MultiDict[str],
        end_user: EndUser | None,
    ) -> AsyncIterator[dict[str, object]]:
        """Each page's decoded body, until finAPI's ``paging.pageCount`` is reached."""
        page = 1
        while True:
            paged = query.copy()
            paged["page"] = str(page)
            response = await self._api.call(endpoint, subject=user, params=paged, end_user=end_user)
            document = decode(response.body, endpoint.path)
            if not isinstance(document, dict):
                document = {}
            paging = read_finapi(document.get("paging"), Paging, what=endpoint.path)
            yield document
            if page >= paging.page_count:
                return
            page += 1


def _transaction_page(document: object) -> TransactionPage:
    body = document if isinstance(document, dict) else {}
    totals = [
        read_finapi(body.get(name, 0), Decimal, what="transactions")
        for name in ("income", "spending", "balance")
    ]
    return TransactionPage(
        tuple(read_list(body, "transactions", FinApiTransaction, what="transactions")),
        read_finapi(body.get("paging"), Paging, what="transactions"),
        *totals,
    )
