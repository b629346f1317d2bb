"""The records behind the emulated finAPI data API, and their JSON in each API version.

v1 writes dates as ``YYYY-MM-DD HH:MM:SS.SSS`` German time and every field the v1 spec marks
required; v2 writes ``YYYY-MM-DD`` dates, RFC 3339 timestamps and leaves out v1-only fields.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import attrs

__all__ = [
    "BERLIN",
    "COUNTERPARTS",
    "ORDER_KEYS",
    "Account",
    "Connection",
    "Interface",
    "Tx",
    "Wire",
    "amount_json",
]

BERLIN: Final = ZoneInfo("Europe/Berlin")
_TYPES: Final = (("Checking", 1), ("Savings", 2), ("CreditCard", 3))
COUNTERPARTS: Final = (
    ("REWE Markt GmbH", "DE12500105170648489890", "Lebensmittel Einkauf"),
    ("Stadtwerke Muenchen", "DE89370400440532013000", "Strom Abschlag"),
    ("Employer GmbH", "DE75512108001245126199", "Gehalt"),
    ("Deutsche Bahn AG", "DE02120300000000202051", "Fahrkarte Online"),
    ("Hausverwaltung Meier", "DE44500105175407324931", "Miete Wohnung"),
    ("Amazon EU S.a.r.l.", "DE27100777770209299700", "Bestellung Online"),
)


@attrs.define
class Tx:
    id: int
    account_id: int
    amount: Decimal
    booking: dt.date
    imported: float
    counterpart: int
    reference: str
    is_new: bool = True

    @property
    def name(self) -> str:
        return COUNTERPARTS[self.counterpart][0]

    @property
    def counterpart_text(self) -> str:
        return " ".join(COUNTERPARTS[self.counterpart][:2])

    @property
    def imported_day(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.imported, BERLIN).date()

    @property
    def purpose(self) -> str:
        return f"{COUNTERPARTS[self.counterpart][2]} {self.reference}"


ORDER_KEYS: Final[dict[str, Callable[[Tx], Any]]] = {
    "id": lambda t: t.id,
    "parentid": lambda t: 0,
    "accountid": lambda t: t.account_id,
    "valuedate": lambda t: t.booking,
    "bankbookingdate": lambda t: t.booking,
    "finapibookingdate": lambda t: t.booking,
    "amount": lambda t: t.amount,
    "purpose": lambda t: t.purpose,
    "counterpartname": lambda t: t.name,
    "counterpartiban": lambda t: COUNTERPARTS[t.counterpart][1],
    "importdate": lambda t: t.imported,
    "isnew": lambda t: t.is_new,
    "ispotentialduplicate": lambda t: False,
}


@attrs.define
class Account:
    id: int
    connection_id: int
    user_id: str
    place: int
    opening: Decimal
    updated: float

    @property
    def type(self) -> tuple[str, int]:
        return _TYPES[self.place % len(_TYPES)]

    @property
    def iban(self) -> str:
        return f"DE{10 + self.id % 90}1001001{self.id:011d}"


@attrs.define
class Interface:
    """An XS2A interface: its consent, the flag that stops finAPI's batch, the last updates.

    A consent past its end stays ``PRESENT`` with its ``expiresAt`` and sets
    ``userActionRequired`` (the sandbox's reading; finAPI documents neither case).
    """

    consent_expires: float
    action_required: bool = False
    last_manual: tuple[str, float] | None = None  # (result, when)
    last_auto: tuple[str, float] | None = None

    def needs_user(self, now: float) -> bool:
        return self.action_required or self.consent_expires <= now


@attrs.define
class Connection:
    id: int
    user_id: str
    name: str | None
    account_ids: list[int] = attrs.Factory(list)
    updates: int = 0
    interface: Interface = attrs.Factory(lambda: Interface(0.0))


def amount_json(value: Decimal) -> float:
    return float(value)  # JSON numbers; two decimals survive float's shortest repr


@attrs.frozen
class Wire:
    """JSON shapes for one API version."""

    v1: bool

    def date(self, day: dt.date) -> str:
        return f"{day.isoformat()} 00:00:00.000" if self.v1 else day.isoformat()

    def instant(self, seconds: float) -> str:
        moment = dt.datetime.fromtimestamp(seconds, BERLIN)
        if self.v1:
            return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
        return moment.isoformat(timespec="milliseconds")

    def tx_json(self, tx: Tx) -> dict[str, Any]:
        name, iban, _ = COUNTERPARTS[tx.counterpart]
        body: dict[str, Any] = {
            "id": tx.id,
            "parentId": None,
            "accountId": tx.account_id,
            "valueDate": self.date(tx.booking),
            "bankBookingDate": self.date(tx.booking),
            "finapiBookingDate": self.date(tx.booking),
            "amount": amount_json(tx.amount),
            "currency": "EUR",
            "purpose": tx.purpose,
            "counterpartName": name,
            "counterpartAccountNumber": iban[-10:],
            "counterpartIban": iban,
            "counterpartBlz": iban[4:12],
            "counterpartBic": None,
            "counterpartBankName": None,
            "counterpartMandateReference": None,
            "counterpartCustomerReference": None,
            "counterpartCreditorId": None,
            "counterpartDebitorId": None,
            "type": "Gutschrift" if tx.amount >= 0 else "Lastschrift",
            "typeCodeZka": None,
            "typeCodeSwift": None,
            "sepaPurposeCode": None,
            "bankTransactionCode": None,
            "primanota": None,
            "category": None,
            "labels": [],
            "isPotentialDuplicate": False,
            "isAdjustingEntry": False,
            "isNew": tx.is_new,
            "importDate": self.instant(tx.imported),
            "children": [],
            "paypalData": None,
            "endToEndReference": tx.reference,
            "compensationAmount": None,
            "originalAmount": None,
            "originalCurrency": None,
            "differentDebitor": None,
            "differentCreditor": None,
        }
        return body

    def account_json(self, account: Account, total: Decimal) -> dict[str, Any]:
        """An Account; ``total`` is its balance."""
        type_name, type_id = account.type
        balance = amount_json(total)
        body: dict[str, Any] = {
            "id": account.id,
            "bankConnectionId": account.connection_id,
            "accountName": f"{type_name} account",
            "iban": account.iban,
            "accountNumber": account.iban[-10:],
            "subAccountNumber": None,
            "accountHolderName": "Max Mustermann",
            "accountHolderId": "XXXXX",
            "accountCurrency": "EUR",
            "accountType": type_name,
            "balance": balance,
            "overdraft": 0.0,
            "overdraftLimit": 0.0,
            "availableFunds": balance,
            "isNew": True,
            "interfaces": [],
            "isSeized": False,
        }
        if self.v1:
            body.update(
                accountTypeId=type_id,
                accountTypeName=type_name,
                lastSuccessfulUpdate=self.instant(account.updated),
                lastUpdateAttempt=self.instant(account.updated),
                status="UPDATED",
                supportedOrders=[],
                clearingAccounts=[],
            )
        return body

    def update_json(self, mark: tuple[str, float] | None) -> dict[str, Any] | None:
        if mark is None:
            return None
        result, when = mark
        failed = result != "OK"
        return {
            "result": result,
            "errorMessage": "Login refused by the bank" if failed else None,
            "errorType": "BUSINESS" if failed else None,
            "timestamp": self.instant(when),
        }

    def interface_json(self, interface: Interface, now: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "interface" if self.v1 else "bankingInterface": "XS2A",
            "loginCredentials": [],
            "defaultTwoStepProcedureId": None,
            "twoStepProcedures": [],
            "aisConsent": {
                "status": "PRESENT",
                "expiresAt": self.instant(interface.consent_expires),
            },
            "lastManualUpdate": self.update_json(interface.last_manual),
            "lastAutoUpdate": self.update_json(interface.last_auto),
            "userActionRequired": interface.needs_user(now),
            "maxDaysForDownload": 0,
        }
        if not self.v1:  # v2 leaves out what is unset, and its consent says more
            body = {key: value for key, value in body.items() if value is not None}
            body["aisConsent"]["supportsImportNewAccounts"] = True
        return body

    def connection_json(self, connection: Connection, now: float) -> dict[str, Any]:
        bank = {
            "id": 280001,
            "name": "finAPI Sandbox Bank",
            "bic": "SBXBDEM1XXX",
            "blz": "10010010",
            "location": "DE",
            "city": "Muenchen",
            "isTestBank": True,
            "popularity": 0,
            "interfaces": [],
            "isBeta": False,
        }
        body: dict[str, Any] = {
            "id": connection.id,
            "name": connection.name,
            "updateStatus": "READY",
            "categorizationStatus": "READY",
            "interfaces": [self.interface_json(connection.interface, now)],
            "accountIds": list(connection.account_ids),
            "owners": [],
            "bank": bank,
        }
        if self.v1:
            bank.update(
                loginHint=None,
                blzs=["10010010"],
                isSupported=True,
                health=100,
                loginFieldUserId=None,
                loginFieldCustomerId=None,
                loginFieldPin=None,
                pinsAreVolatile=False,
                isCustomerIdPassword=False,
                supportedDataSources=[],
                bankGroup=None,
                lastCommunicationAttempt=None,
                lastSuccessfulCommunication=None,
            )
            body.update(
                bankId=bank["id"],
                bankingUserId=None,
                bankingCustomerId=None,
                bankingPin=None,
                type="DEMO",
                lastManualUpdate=self.update_json(connection.interface.last_manual),
                lastAutoUpdate=self.update_json(connection.interface.last_auto),
                ibanOnlyMoneyTransferSupported=False,
                ibanOnlyDirectDebitSupported=False,
                collectiveMoneyTransferSupported=False,
                defaultTwoStepProcedureId=None,
                twoStepProcedures=[],
                furtherLoginNotRecommended=False,
            )
        return body
