"""finAPI Access data, emulated: what a completed Web Form import leaves in finAPI Access.

:meth:`FinApiDataService.import_connection` (a completed import form) makes one bank connection
with ``finapi_accounts_per_connection`` accounts of ``finapi_transactions_per_account``
transactions each, deterministic from ``seed``; :meth:`FinApiDataService.update_connection`
adds ``finapi_transactions_per_update`` newer ones per account. Served for v1 and v2 with the
user's token (a client token is 403): bank connections, accounts, daily balances, transactions
(paged, the documented filters and ``order``), each by id too; lists of ids repeated or
comma-separated. v1 writes German-time ``YYYY-MM-DD HH:MM:SS.SSS`` dates and every field its
spec requires, v2 ``YYYY-MM-DD`` dates and RFC 3339 timestamps. Refusals use finAPI's
ErrorMessage (400 ``ILLEGAL_PAGE_SIZE``, ``TOO_MANY_IDS``, ``UNSUPPORTED_ORDER``; 404
``UNKNOWN_ENTITY``; 422 ``ILLEGAL_FIELD_VALUE``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from .finapi import FinApiService, Refused
from .finapi_records import (
    BERLIN,
    ORDER_KEYS,
    Account,
    Connection,
    Tx,
    Wire,
    amount_json,
)
from .state import SandboxState

__all__ = ["FinApiDataService"]


def _matching(terms: list[str], text: Callable[[Tx], str]) -> Callable[[Tx], bool]:
    """Every term in the text, case-insensitive (finAPI's search rule)."""
    return lambda t: all(term in text(t).lower() for term in terms)


def _within(low: Any, high: Any, value: Callable[[Tx], Any]) -> Callable[[Tx], bool]:
    """Inclusive bounds; ``None`` leaves a side open."""
    return lambda t: (low is None or value(t) >= low) and (high is None or value(t) <= high)


class FinApiDataService:
    """The bank connections, accounts and transactions of the emulated finAPI mandator."""

    def __init__(self, state: SandboxState, finapi: FinApiService) -> None:
        self.state = state
        self.finapi = finapi
        self.connections: dict[int, Connection] = {}
        self.accounts: dict[int, Account] = {}
        self.transactions: dict[int, Tx] = {}
        self._entity_ids = itertools.count(1)
        self._transaction_ids = itertools.count(1)
        finapi.on_user_deleted.append(self.forget_user)

    def routes(self) -> list[web.RouteDef]:
        """Routes under ``/api/v1`` and ``/api/v2``; the one not configured answers 403."""
        table: list[web.RouteDef] = []
        for version in ("v1", "v2"):
            base = f"/api/{version}"
            guard = self.finapi.version
            table += [
                web.get(base + "/bankConnections", guard(version, self.list_connections)),
                web.get(base + "/bankConnections/{id}", guard(version, self.get_connection)),
                web.delete(base + "/bankConnections/{id}", guard(version, self.delete_connection)),
                web.get(base + "/accounts", guard(version, self.list_accounts)),
                web.get(base + "/accounts/dailyBalances", guard(version, self.daily_balances)),
                web.get(base + "/accounts/{id}", guard(version, self.get_account)),
                web.get(base + "/transactions", guard(version, self.list_transactions)),
                web.get(base + "/transactions/{id}", guard(version, self.get_transaction)),
            ]
        return table

    # -- what the Web Form does --------------------------------------------------------------

    def import_connection(self, user_id: str, name: str | None = None) -> int:
        """Create a bank connection with its accounts and transactions; return its id."""
        config = self.state.config
        connection = Connection(next(self._entity_ids), user_id, name or "Sandbox Bank")
        self.connections[connection.id] = connection
        now = self.state.clock.now()
        self.renew_consent(connection, now)
        for place in range(config.finapi_accounts_per_connection):
            rng = random.Random(f"{config.seed}:{connection.id}:{place}")  # noqa: S311
            account = Account(
                next(self._entity_ids),
                connection.id,
                user_id,
                place,
                Decimal(rng.randrange(1000, 5000)),
                now,
            )
            self.accounts[account.id] = account
            connection.account_ids.append(account.id)
            self._add_transactions(account, rng, config.finapi_transactions_per_account, now)
        self.state.count("finapi_data.imports")
        return connection.id

    def renew_consent(self, connection: Connection, now: float) -> None:
        """The user gave the bank a new consent (an import, an update form)."""
        connection.interface.consent_expires = now + self.state.config.finapi_consent_days * 86400
        connection.interface.action_required = False

    def update_connection(self, connection_id: int, *, user_present: bool = True) -> None:
        """Import newer transactions for every account of the connection; with the user present
        (a web form) the consent is renewed too."""
        connection = self.connections[connection_id]
        connection.updates += 1
        now = self.state.clock.now()
        if user_present:
            self.renew_consent(connection, now)
        connection.interface.last_manual = ("OK", now)
        for account_id in connection.account_ids:
            account = self.accounts[account_id]
            account.updated = now
            rng = random.Random(  # noqa: S311
                f"{self.state.config.seed}:{connection.id}:{account.place}:{connection.updates}"
            )
            self._add_transactions(
                account, rng, self.state.config.finapi_transactions_per_update, now
            )
        self.state.count("finapi_data.updates")

    @property
    def _wire(self) -> Wire:
        return Wire(v1=self.state.config.finapi_version == "v1")

    def forget_user(self, user_id: str) -> None:
        """Drop a deleted user's connections, accounts and transactions."""
        for connection in [c for c in self.connections.values() if c.user_id == user_id]:
            self._drop(connection)

    def _drop(self, connection: Connection) -> None:
        del self.connections[connection.id]
        gone = set(connection.account_ids)
        for account_id in gone:
            del self.accounts[account_id]
        for tx_id in [t.id for t in self.transactions.values() if t.account_id in gone]:
            del self.transactions[tx_id]

    def owns(self, user_id: str, connection_id: int) -> bool:
        """Whether ``connection_id`` is one of ``user_id``'s."""
        connection = self.connections.get(connection_id)
        return connection is not None and connection.user_id == user_id

    def _add_transactions(
        self, account: Account, rng: random.Random, count: int, now: float
    ) -> None:
        today = dt.datetime.fromtimestamp(now, BERLIN).date()
        for n in range(count):
            salary = rng.randrange(30) == 0
            cents = rng.randrange(250_000, 400_000) if salary else -rng.randrange(100, 25_000)
            tx_id = next(self._transaction_ids)
            self.transactions[tx_id] = Tx(
                tx_id,
                account.id,
                Decimal(cents) / 100,
                today - dt.timedelta(days=(count - 1 - n) // 4),
                now,
                2 if salary else rng.choice((0, 1, 3, 4, 5)),
                f"REF{rng.randrange(10**8):08d}",
            )

    def _balance(self, account: Account) -> Decimal:
        return account.opening + sum(
            (t.amount for t in self.transactions.values() if t.account_id == account.id),
            Decimal(0),
        )

    # -- request parsing -----------------------------------------------------------------------

    def _refuse(self, request: web.Request, status: int, code: str, message: str) -> Refused:
        return Refused(self.finapi.error(request, status, code, message, "TECHNICAL"))

    def _ids(self, request: web.Request, name: str) -> set[int] | None:
        values = [part for raw in request.query.getall(name, []) for part in raw.split(",")]
        if not values:
            return None
        if len(values) > 1000:
            raise self._refuse(request, 400, "TOO_MANY_IDS", f"{name}: at most 1000 ids")
        try:
            return {int(value) for value in values}
        except ValueError:
            raise self._refuse(request, 400, "BAD_REQUEST", f"{name} must hold integers") from None

    def _day(self, request: web.Request, name: str) -> dt.date | None:
        value = request.query.get(name)
        if value is None:
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self._refuse(request, 400, "BAD_REQUEST", f"{name} must be YYYY-MM-DD") from None

    def _number(self, request: web.Request, name: str) -> Decimal | None:
        value = request.query.get(name)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise self._refuse(request, 400, "BAD_REQUEST", f"{name} must be a number")
        return number

    def _flag(self, request: web.Request, name: str) -> bool | None:
        value = request.query.get(name)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise self._refuse(request, 400, "BAD_REQUEST", f"{name} must be true or false")
        return value == "true"

    def _paging(
        self, request: web.Request, items: Sequence[Any]
    ) -> tuple[Sequence[Any], dict[str, int]]:
        try:
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("perPage", "20"))
        except ValueError:
            raise self._refuse(
                request, 400, "BAD_REQUEST", "page and perPage are integers"
            ) from None
        if page < 1:
            raise self._refuse(request, 400, "BAD_REQUEST", "page must be at least 1")
        if not 1 <= per_page <= 500:
            raise self._refuse(request, 400, "ILLEGAL_PAGE_SIZE", "perPage must be 1 to 500")
        start = (page - 1) * per_page
        paging = {
            "page": page,
            "perPage": per_page,
            "pageCount": math.ceil(len(items) / per_page),
            "totalCount": len(items),
        }
        return items[start : start + per_page], paging

    def _mine(self, table: dict[int, Any], request: web.Request, user_id: str) -> Any:
        try:
            item = table.get(int(request.match_info["id"]))
        except ValueError:
            item = None
        owner = None if item is None else self._owner(item)
        if owner != user_id:
            raise self._refuse(request, 404, "UNKNOWN_ENTITY", "Entity not found")
        return item

    def _owner(self, item: Tx | Account | Connection) -> str:
        if isinstance(item, Tx):
            return self.accounts[item.account_id].user_id
        return item.user_id

    # -- handlers ------------------------------------------------------------------------------

    async def list_connections(self, request: web.Request) -> web.Response:
        """``GET /bankConnections`` -> BankConnectionList."""
        user_id = self.finapi.user_of(request)
        ids = self._ids(request, "ids")
        found = [
            self._wire.connection_json(c, self.state.clock.now())
            for c in self.connections.values()
            if c.user_id == user_id and (ids is None or c.id in ids)
        ]
        return web.json_response({"connections": found})

    async def get_connection(self, request: web.Request) -> web.Response:
        """``GET /bankConnections/{id}``."""
        connection = self._mine(self.connections, request, self.finapi.user_of(request))
        return web.json_response(self._wire.connection_json(connection, self.state.clock.now()))

    async def delete_connection(self, request: web.Request) -> web.Response:
        """``DELETE /bankConnections/{id}``: with its accounts and transactions."""
        self._drop(self._mine(self.connections, request, self.finapi.user_of(request)))
        return web.Response(status=200)

    async def list_accounts(self, request: web.Request) -> web.Response:
        """``GET /accounts`` with its filters -> AccountList."""
        user_id = self.finapi.user_of(request)
        ids = self._ids(request, "ids")
        connections = self._ids(request, "bankConnectionIds")
        types = {p for raw in request.query.getall("accountTypes", []) for p in raw.split(",")}
        terms = request.query.get("search", "").lower().split()
        low, high = self._number(request, "minBalance"), self._number(request, "maxBalance")
        found = []
        for account in self.accounts.values():
            body = self._wire.account_json(account, self._balance(account))
            text = " ".join(str(body[k] or "") for k in ("accountName", "iban", "accountNumber"))
            balance = Decimal(str(body["balance"]))
            if (
                account.user_id == user_id
                and (ids is None or account.id in ids)
                and (connections is None or account.connection_id in connections)
                and (not types or account.type[0] in types)
                and all(term in text.lower() for term in terms)
                and (low is None or balance >= low)
                and (high is None or balance <= high)
            ):
                found.append(body)
        return web.json_response({"accounts": found})

    async def get_account(self, request: web.Request) -> web.Response:
        """``GET /accounts/{id}``."""
        account = self._mine(self.accounts, request, self.finapi.user_of(request))
        return web.json_response(self._wire.account_json(account, self._balance(account)))

    async def get_transaction(self, request: web.Request) -> web.Response:
        """``GET /transactions/{id}``."""
        tx = self._mine(self.transactions, request, self.finapi.user_of(request))
        return web.json_response(self._wire.tx_json(tx))

    async def list_transactions(self, request: web.Request) -> web.Response:
        """``GET /transactions``: filters, order, paging, and totals over every page."""
        user_id = self.finapi.user_of(request)
        query = request.query
        if query.get("view") not in ("bankView", "userView"):
            raise self._refuse(request, 400, "BAD_REQUEST", "view must be bankView or userView")
        direction = query.get("direction", "all")
        if direction not in ("all", "income", "spending"):
            raise self._refuse(
                request, 400, "BAD_REQUEST", "direction must be all, income or spending"
            )
        checks = self._transaction_checks(request, user_id, direction)
        found = [t for t in self.transactions.values() if all(check(t) for check in checks)]
        found = self._ordered(request, found)
        page, paging = self._paging(request, found)
        income = sum((t.amount for t in found if t.amount >= 0), Decimal(0))
        spending = sum((t.amount for t in found if t.amount < 0), Decimal(0))
        return web.json_response(
            {
                "transactions": [self._wire.tx_json(t) for t in page],
                "paging": paging,
                "income": amount_json(income),
                "spending": amount_json(spending),
                "balance": amount_json(income + spending),
            }
        )

    def _transaction_checks(
        self, request: web.Request, user_id: str, direction: str
    ) -> list[Callable[[Tx], bool]]:
        accounts = {a.id for a in self.accounts.values() if a.user_id == user_id}
        account_ids, ids = self._ids(request, "accountIds"), self._ids(request, "ids")
        checks: list[Callable[[Tx], bool]] = [lambda t: t.account_id in accounts]
        if account_ids is not None:
            checks.append(lambda t: t.account_id in account_ids)
        if ids is not None:
            checks.append(lambda t: t.id in ids)
        texts: dict[str, Callable[[Tx], str]] = {
            "search": lambda t: f"{t.purpose} {t.counterpart_text} {t.reference}",
            "counterpart": lambda t: t.counterpart_text,
            "purpose": lambda t: t.purpose,
        }
        for name, text in texts.items():
            terms = request.query.get(name, "").lower().split()
            if terms:
                checks.append(_matching(terms, text))
        for prefix in ("BankBookingDate", "FinapiBookingDate"):
            low, high = self._day(request, "min" + prefix), self._day(request, "max" + prefix)
            checks.append(_within(low, high, lambda t: t.booking))
        low_i, high_i = self._day(request, "minImportDate"), self._day(request, "maxImportDate")
        checks.append(_within(low_i, high_i, lambda t: t.imported_day))
        low_a, high_a = self._number(request, "minAmount"), self._number(request, "maxAmount")
        checks.append(_within(low_a, high_a, lambda t: t.amount))
        if direction != "all":
            checks.append(lambda t: (t.amount >= 0) == (direction == "income"))
        is_new = self._flag(request, "isNew")
        if is_new is not None:
            checks.append(lambda t: t.is_new == is_new)
        for flag in ("isPotentialDuplicate", "isAdjustingEntry"):
            if self._flag(request, flag):
                checks.append(lambda t: False)  # the sandbox makes neither
        return checks

    def _ordered(self, request: web.Request, found: list[Tx]) -> list[Tx]:
        orders = request.query.getall("order", []) or ["id,asc"]
        keys: list[tuple[Callable[[Tx], Any], bool]] = [(ORDER_KEYS["id"], False)]
        for order in reversed(orders):
            field, _, way = order.partition(",")
            key = ORDER_KEYS.get(field.strip().lower())
            if key is None or way.strip().lower() not in ("", "asc", "desc"):
                raise self._refuse(request, 400, "UNSUPPORTED_ORDER", f"Cannot order by {order}")
            keys.append((key, way.strip().lower() == "desc"))
        for key, descending in keys:  # stable sorts, least significant key first
            found.sort(key=key, reverse=descending)
        return found

    async def daily_balances(self, request: web.Request) -> web.Response:
        """``GET /accounts/dailyBalances``: end-of-day balances, paged."""
        user_id = self.finapi.user_of(request)
        wanted = self._ids(request, "accountIds")
        mine = [a for a in self.accounts.values() if a.user_id == user_id]
        if wanted is not None and not wanted <= {a.id for a in mine}:
            raise self._refuse(request, 404, "UNKNOWN_ENTITY", "Account not found")
        regarded = [a for a in mine if wanted is None or a.id in wanted]
        today = dt.datetime.fromtimestamp(self.state.clock.now(), BERLIN).date()
        end = self._day(request, "endDate") or today
        start = self._day(request, "startDate") or end - dt.timedelta(days=30)
        if start > end or (end - start).days > 366:
            raise self._refuse(
                request, 422, "ILLEGAL_FIELD_VALUE", "The range must be 0 to 366 days"
            )
        days = self._days(
            regarded, start, end, projection=self._flag(request, "withProjection") is not False
        )
        if request.query.get("order", "date,asc").lower() == "date,desc":
            days.reverse()
        page, paging = self._paging(request, days)
        latest = min((a.updated for a in regarded), default=None)
        return web.json_response(
            {
                "latestCommonBalanceTimestamp": None
                if latest is None
                else self._wire.instant(latest),
                "dailyBalances": page,
                "paging": paging,
            }
        )

    def _days(
        self, accounts: Iterable[Account], start: dt.date, end: dt.date, *, projection: bool
    ) -> list[dict[str, Any]]:
        ids = {a.id for a in accounts}
        txs = [t for t in self.transactions.values() if t.account_id in ids]
        balance = sum((self._balance(a) for a in self.accounts.values() if a.id in ids), Decimal(0))
        first = min((t.booking for t in txs), default=end)
        days = []
        for offset in range((end - start).days + 1):
            day = start + dt.timedelta(days=offset)
            if not projection and day < first:
                continue
            booked = [t for t in txs if t.booking == day]
            later = sum((t.amount for t in txs if t.booking > day), Decimal(0))
            days.append(
                {
                    "date": self._wire.date(day),
                    "balance": amount_json(balance - later),
                    "income": amount_json(
                        sum((t.amount for t in booked if t.amount >= 0), Decimal(0))
                    ),
                    "spending": amount_json(
                        -sum((t.amount for t in booked if t.amount < 0), Decimal(0))
                    ),
                    "internalAdjustingEntries": 0.0,
                    "transactions": [t.id for t in booked],
                }
            )
        return days
