"""Everifin BankConnect data, emulated: accounts, balances, transactions, refresh.

Everifin's real paths are not public (``shared/reference/everifin_keycloak.md`` A4, A5); the
sandbox serves them under ``/v1`` with Everifin's ``{data, meta}`` envelope and ``errors`` list,
``page``/``countPerPage`` paging, and the ``updatedFrom``/``createdFrom``/``bookingDateFrom``/
``bookingDateTo`` filters. Data is synthetic and deterministic per user (and ``seed``); a
transaction refresh adds new transactions and updates one old one, stamped with the sandbox
clock, so incremental sync can be exercised. An expired access token gets 401.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any

import attrs
from aiohttp import web

from .common import bearer, json_error
from .keycloak import KeycloakService
from .state import SandboxState

__all__ = ["BankConnectService"]

_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_MAX_PER_PAGE = 500
_COUNTERPARTIES = (
    "Tesco",
    "Slovnaft",
    "Orange",
    "Employer s.r.o.",
    "Landlord",
    "Bolt",
    "IKEA",
    "Lidl",
)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_instant(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@attrs.define
class _Book:
    """One user's accounts and transactions."""

    accounts: list[dict[str, Any]]
    transactions: dict[str, list[dict[str, Any]]]
    refreshes: int = 0


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__()
        self.response = response


def _error(status: int, code: str, title: str, detail: str | None = None) -> web.Response:
    entry = {"code": code, "title": title}
    if detail:
        entry["detail"] = detail
    return json_error(status, {"errors": [entry], "meta": {"status": "ERROR"}})


def _ok(data: Any, **meta: Any) -> web.Response:
    return web.json_response({"data": data, "meta": {"status": "SUCCESS", **meta}})


class BankConnectService:
    """The BankConnect API for users of the emulated Keycloak realm."""

    def __init__(self, state: SandboxState, keycloak: KeycloakService) -> None:
        self.state = state
        self.keycloak = keycloak
        self.books: dict[str, _Book] = {}

    def routes(self) -> list[web.RouteDef]:
        """Routes under ``/v1``."""
        wrap = self._guarded
        return [
            web.get("/v1/accounts", wrap(self.list_accounts)),
            web.post("/v1/accounts/activate", wrap(self.activate_accounts)),
            web.get("/v1/accounts/{account_id}", wrap(self.account_detail)),
            web.get("/v1/accounts/{account_id}/balances", wrap(self.balances)),
            web.get("/v1/accounts/{account_id}/transactions", wrap(self.list_transactions)),
            web.get("/v1/transactions/{transaction_id}", wrap(self.transaction_detail)),
            web.post("/v1/transactions/refresh", wrap(self.refresh_transactions)),
        ]

    def _guarded(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.Response:
            user = self.keycloak.user_for(bearer(request))
            if user is None:
                return _error(
                    401,
                    "UNAUTHORIZED",
                    "Unauthorized",
                    "Access token is missing, invalid or expired",
                )
            try:
                response: web.Response = await handler(request, self._book(user))
            except _Refused as refused:
                return refused.response
            return response

        return guarded

    # -- synthetic data ------------------------------------------------------------------------

    def _book(self, user: str) -> _Book:
        book = self.books.get(user)
        if book is None:
            book = self.books[user] = self._generate(user)
        return book

    def _generate(self, user: str) -> _Book:
        seed = f"{self.state.config.seed}:{user}"
        rng = random.Random(seed)  # noqa: S311  (synthetic data)
        tag = hashlib.sha256(seed.encode()).hexdigest()[:8]
        accounts, transactions = [], {}
        for index in range(3):
            account_id = f"acc-{tag}-{index}"
            accounts.append(
                {
                    "id": account_id,
                    "iban": f"SK{rng.randrange(10, 99)}1100{rng.randrange(10**15, 10**16)}",
                    "name": ("Current account", "Savings", "Travel card")[index],
                    "currency": "EUR",
                    "bankCode": "EFT",
                    "bankName": "Everifin Test Bank",
                    "ownerName": user.title(),
                    # One account starts inactive: it must be activated before its data is read.
                    "active": index != 2,
                }
            )
            transactions[account_id] = [
                self._transaction(rng, account_id, n)
                for n in range(self.state.config.transactions_per_account)
            ]
        return _Book(accounts, transactions)

    @staticmethod
    def _transaction(
        rng: random.Random, account_id: str, n: int, created: dt.datetime | None = None
    ) -> dict[str, Any]:
        created = created or _EPOCH + dt.timedelta(hours=6 * n, milliseconds=rng.randrange(1000))
        amount = round(rng.uniform(-250, 120), 2) if n % 10 else round(rng.uniform(1500, 2500), 2)
        return {
            "id": f"tx-{account_id}-{n:06d}",
            "accountId": account_id,
            "amount": amount,
            "currency": "EUR",
            "creditDebitIndicator": "CRDT" if amount >= 0 else "DBIT",
            "status": "BOOKED",
            "bookingDate": created.date().isoformat(),
            "valueDate": created.date().isoformat(),
            "counterpartyName": _COUNTERPARTIES[rng.randrange(len(_COUNTERPARTIES))],
            "remittanceInformation": f"Payment {n}",
            "createdAt": _iso(created),
            "lastUpdated": _iso(created),
        }

    def _account(
        self, book: _Book, account_id: str, *, require_active: bool = True
    ) -> dict[str, Any]:
        account = next((a for a in book.accounts if a["id"] == account_id), None)
        if account is None:
            raise _Refused(_error(404, "ACCOUNT_NOT_FOUND", "Account not found"))
        if require_active and not account["active"]:
            raise _Refused(_error(409, "ACCOUNT_NOT_ACTIVE", "Account is not activated"))
        return account

    # -- endpoints -----------------------------------------------------------------------------

    async def list_accounts(self, request: web.Request, book: _Book) -> web.Response:
        """``GET /v1/accounts``."""
        return _ok(book.accounts)

    async def activate_accounts(self, request: web.Request, book: _Book) -> web.Response:
        """``POST /v1/accounts/activate`` with ``{"accountIds": [...]}``."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "INVALID_REQUEST", "Body must be JSON")
        ids = body.get("accountIds") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            return _error(400, "INVALID_REQUEST", "accountIds must be a non-empty list of ids")
        accounts = [self._account(book, account_id, require_active=False) for account_id in ids]
        for account in accounts:
            account["active"] = True
        return _ok(accounts)

    async def account_detail(self, request: web.Request, book: _Book) -> web.Response:
        """``GET /v1/accounts/{id}``."""
        return _ok(self._account(book, request.match_info["account_id"], require_active=False))

    async def balances(self, request: web.Request, book: _Book) -> web.Response:
        """``GET /v1/accounts/{id}/balances``: booked (CLBD) and available (CLAV)."""
        account = self._account(book, request.match_info["account_id"])
        booked = round(1000 + sum(t["amount"] for t in book.transactions[account["id"]]), 2)
        today = dt.datetime.fromtimestamp(self.state.clock.now(), tz=dt.UTC).date().isoformat()
        return _ok(
            [
                {"type": "CLBD", "amount": booked, "currency": "EUR", "referenceDate": today},
                {
                    "type": "CLAV",
                    "amount": round(booked + 500, 2),
                    "currency": "EUR",
                    "referenceDate": today,
                },
            ]
        )

    async def list_transactions(self, request: web.Request, book: _Book) -> web.Response:
        """``GET /v1/accounts/{id}/transactions``: filtered, sorted by lastUpdated, paged."""
        account = self._account(book, request.match_info["account_id"])
        query = request.query
        try:
            page = int(query.get("page", "1"))
            per_page = int(query.get("countPerPage", "50"))
            updated_from = _parse_instant(query["updatedFrom"]) if "updatedFrom" in query else None
            created_from = _parse_instant(query["createdFrom"]) if "createdFrom" in query else None
            booking_from = (
                dt.date.fromisoformat(query["bookingDateFrom"])
                if "bookingDateFrom" in query
                else None
            )
            booking_to = (
                dt.date.fromisoformat(query["bookingDateTo"]) if "bookingDateTo" in query else None
            )
        except ValueError as exc:
            return _error(400, "INVALID_FILTER", "Invalid query parameter", str(exc))
        if page < 1 or not 1 <= per_page <= _MAX_PER_PAGE:
            return _error(
                400, "INVALID_PAGINATION", f"page >= 1 and countPerPage 1..{_MAX_PER_PAGE}"
            )
        selected = [
            t
            for t in book.transactions[account["id"]]
            if (updated_from is None or _parse_instant(t["lastUpdated"]) >= updated_from)
            and (created_from is None or _parse_instant(t["createdAt"]) >= created_from)
            and (booking_from is None or dt.date.fromisoformat(t["bookingDate"]) >= booking_from)
            and (booking_to is None or dt.date.fromisoformat(t["bookingDate"]) <= booking_to)
        ]
        selected.sort(key=lambda t: (t["lastUpdated"], t["id"]))
        total = len(selected)
        last = max(1, -(-total // per_page))
        chunk = selected[(page - 1) * per_page : page * per_page]
        next_url = str(request.url.update_query(page=page + 1)) if page < last else None
        previous_url = str(request.url.update_query(page=page - 1)) if page > 1 else None
        return _ok(
            chunk,
            pagination={
                "page": page,
                "countPerPage": per_page,
                "countTotal": total,
                "first": 1,
                "last": last,
                "nextPageUrl": next_url,
                "previousPageUrl": previous_url,
            },
        )

    async def transaction_detail(self, request: web.Request, book: _Book) -> web.Response:
        """``GET /v1/transactions/{id}``."""
        wanted = request.match_info["transaction_id"]
        for transactions in book.transactions.values():
            for transaction in transactions:
                if transaction["id"] == wanted:
                    return _ok(transaction)
        return _error(404, "TRANSACTION_NOT_FOUND", "Transaction not found")

    async def refresh_transactions(self, request: web.Request, book: _Book) -> web.Response:
        """``POST /v1/transactions/refresh``: new items per active account, one old one updated."""
        book.refreshes += 1
        now = dt.datetime.fromtimestamp(self.state.clock.now(), tz=dt.UTC)
        rng = random.Random(f"{self.state.config.seed}:{book.refreshes}")  # noqa: S311
        refreshed = []
        for account in book.accounts:
            if not account["active"]:
                continue
            transactions = book.transactions[account["id"]]
            for _ in range(3):
                transactions.append(
                    self._transaction(rng, account["id"], len(transactions), created=now)
                )
            if transactions:
                transactions[0]["lastUpdated"] = _iso(now)
                transactions[0]["remittanceInformation"] += " (corrected by the bank)"
            refreshed.append(account["id"])
        return _ok({"refreshedAccounts": refreshed})
