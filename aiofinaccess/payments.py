"""What payments of every provider share: money checked before it is sent, the client's
reference that makes a payment happen once, and how long a reference stays open.

The payment clients are in :mod:`aiofinaccess.finapi` (``FinApiPayments``, ``PaymentForms``) and
:mod:`aiofinaccess.everifin` (``BankConnectPayments``, ``Paygate``); their errors in
:mod:`aiofinaccess.errors`. The names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .core import _exports

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .api.money import Money as Money
    from .api.money import bic as bic
    from .api.money import iban as iban
    from .api.payment_ledger import PaymentTimeouts as PaymentTimeouts
    from .api.payment_ledger import new_reference as new_reference

#: Each public name, once, by the module it lives in.
_HOMES: Final = {
    ".api.money": "Money bic iban",
    ".api.payment_ledger": "PaymentTimeouts new_reference",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
