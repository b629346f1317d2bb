"""Everifin BankConnect (accounts, balances, transactions, their incremental sync, and payments
for a user who granted ``pis``) and Paygate, the merchant payment API.

Every call takes a :class:`~aiofinaccess.SessionManager` holding an
:class:`~aiofinaccess.Everifin` provider; the names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .core import _exports

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .api.everifin.bankconnect import Account as Account
    from .api.everifin.bankconnect import Balance as Balance
    from .api.everifin.bankconnect import BankConnect as BankConnect
    from .api.everifin.bankconnect import BankConnectRoutes as BankConnectRoutes
    from .api.everifin.bankconnect import Transaction as Transaction
    from .api.everifin.bankconnect import TransactionSync as TransactionSync
    from .api.everifin.paygate import Bank as Bank
    from .api.everifin.paygate import Order as Order
    from .api.everifin.paygate import Paygate as Paygate
    from .api.everifin.paygate import PaygateRoutes as PaygateRoutes
    from .api.everifin.paygate_events import EventLog as EventLog
    from .api.everifin.paygate_events import PaygateEvent as PaygateEvent
    from .api.everifin.paygate_events import Verdict as Verdict
    from .api.everifin.paygate_journal import StoredEventLog as StoredEventLog
    from .api.everifin.payment_models import EverifinPayment as EverifinPayment
    from .api.everifin.payment_models import EverifinPaymentStatus as EverifinPaymentStatus
    from .api.everifin.payment_models import PaymentOrder as PaymentOrder
    from .api.everifin.payments import BankConnectPaymentRoutes as BankConnectPaymentRoutes
    from .api.everifin.payments import BankConnectPayments as BankConnectPayments
    from .api.everifin.session_state import SessionStatus as SessionStatus
    from .api.everifin.session_state import session_state as session_state
    from .core.error_bodies import EverifinErrorBody as EverifinErrorBody

#: Each public name, once, by the module it lives in.
_HOMES: Final = {
    ".api.everifin.bankconnect": (
        "Account Balance BankConnect BankConnectRoutes Transaction TransactionSync"
    ),
    ".api.everifin.paygate": "Bank Order Paygate PaygateRoutes",
    ".api.everifin.paygate_events": "EventLog PaygateEvent Verdict",
    ".api.everifin.paygate_journal": "StoredEventLog",
    ".api.everifin.payment_models": "EverifinPayment EverifinPaymentStatus PaymentOrder",
    ".api.everifin.payments": "BankConnectPaymentRoutes BankConnectPayments",
    ".api.everifin.session_state": "SessionStatus session_state",
    ".core.error_bodies": "EverifinErrorBody",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
