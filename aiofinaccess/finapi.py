"""finAPI Access: users, the Web Form 2.0, accounts and transactions, connection updates and
consent state, notification rules, payments (Access and the payment forms), and their models.
What payments of both providers share (``Money``, ``iban``, ``new_reference``,
``PaymentTimeouts``) is in :mod:`aiofinaccess.payments`.

Every call takes a :class:`~aiofinaccess.SessionManager` holding a
:class:`~aiofinaccess.FinApi` provider; the names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .core import _exports

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .api.finapi.consent import ConnectionStatus as ConnectionStatus
    from .api.finapi.consent import connection_state as connection_state
    from .api.finapi.data import FinApiData as FinApiData
    from .api.finapi.data import FinApiDataRoutes as FinApiDataRoutes
    from .api.finapi.filters import AccountFilters as AccountFilters
    from .api.finapi.filters import TransactionFilters as TransactionFilters
    from .api.finapi.models import BankConnection as BankConnection
    from .api.finapi.models import BankConnectionInterface as BankConnectionInterface
    from .api.finapi.models import BankConsent as BankConsent
    from .api.finapi.models import DailyBalance as DailyBalance
    from .api.finapi.models import DailyBalances as DailyBalances
    from .api.finapi.models import FinApiAccount as FinApiAccount
    from .api.finapi.models import FinApiBank as FinApiBank
    from .api.finapi.models import FinApiTransaction as FinApiTransaction
    from .api.finapi.models import Paging as Paging
    from .api.finapi.models import TransactionPage as TransactionPage
    from .api.finapi.models import UpdateResult as UpdateResult
    from .api.finapi.notification_rules import NotificationRule as NotificationRule
    from .api.finapi.notification_rules import NotificationRuleRoutes as NotificationRuleRoutes
    from .api.finapi.notification_rules import NotificationRules as NotificationRules
    from .api.finapi.notification_rules import TriggerEvent as TriggerEvent
    from .api.finapi.payment_forms import FormOptions as FormOptions
    from .api.finapi.payment_forms import PaymentFormRoutes as PaymentFormRoutes
    from .api.finapi.payment_forms import PaymentForms as PaymentForms
    from .api.finapi.payment_models import DirectDebit as DirectDebit
    from .api.finapi.payment_models import Payment as Payment
    from .api.finapi.payment_models import PaymentPage as PaymentPage
    from .api.finapi.payment_models import PaymentStatus as PaymentStatus
    from .api.finapi.payment_models import StandingOrder as StandingOrder
    from .api.finapi.payment_models import StandingOrderFrequency as StandingOrderFrequency
    from .api.finapi.payment_models import StandingOrderRecord as StandingOrderRecord
    from .api.finapi.payment_models import Transfer as Transfer
    from .api.finapi.payments import FinApiPayments as FinApiPayments
    from .api.finapi.payments import PaymentRoutes as PaymentRoutes
    from .api.finapi.sync import FinApiSyncCursor as FinApiSyncCursor
    from .api.finapi.sync import FinApiTransactionSync as FinApiTransactionSync
    from .api.finapi.task_models import BackgroundUpdate as BackgroundUpdate
    from .api.finapi.task_models import Task as Task
    from .api.finapi.task_models import TaskCallbacks as TaskCallbacks
    from .api.finapi.task_models import TaskPayload as TaskPayload
    from .api.finapi.task_models import TaskStatus as TaskStatus
    from .api.finapi.task_models import UpdateCompleted as UpdateCompleted
    from .api.finapi.task_models import UpdateFailed as UpdateFailed
    from .api.finapi.task_models import UpdateOutcome as UpdateOutcome
    from .api.finapi.task_models import WebFormInfo as WebFormInfo
    from .api.finapi.task_models import WebFormRequired as WebFormRequired
    from .api.finapi.task_models import outcome_of as outcome_of
    from .api.finapi.tasks import ConnectionUpdates as ConnectionUpdates
    from .api.finapi.tasks import UpdateRoutes as UpdateRoutes
    from .api.finapi.users import NewUser as NewUser
    from .api.finapi.users import PasswordChange as PasswordChange
    from .api.finapi.users import User as User
    from .api.finapi.users import UserChanges as UserChanges
    from .api.finapi.users import Users as Users
    from .api.finapi.webform import BankConnectionImport as BankConnectionImport
    from .api.finapi.webform import WebForm as WebForm
    from .api.finapi.webform import WebFormCallbacks as WebFormCallbacks
    from .api.finapi.webform import WebForms as WebForms
    from .api.finapi.webform import WebFormStatus as WebFormStatus
    from .core.error_bodies import FinApiErrorBody as FinApiErrorBody
    from .core.error_bodies import WebFormErrorBody as WebFormErrorBody

#: Each public name, once, by the module it lives in.
_HOMES: Final = {
    ".api.finapi.consent": "ConnectionStatus connection_state",
    ".api.finapi.data": "FinApiData FinApiDataRoutes",
    ".api.finapi.filters": "AccountFilters TransactionFilters",
    ".api.finapi.models": (
        "BankConnection BankConnectionInterface BankConsent DailyBalance DailyBalances "
        "FinApiAccount FinApiBank FinApiTransaction Paging TransactionPage UpdateResult"
    ),
    ".api.finapi.notification_rules": (
        "NotificationRule NotificationRuleRoutes NotificationRules TriggerEvent"
    ),
    ".api.finapi.payment_forms": "FormOptions PaymentFormRoutes PaymentForms",
    ".api.finapi.payment_models": (
        "DirectDebit Payment PaymentPage PaymentStatus StandingOrder StandingOrderFrequency "
        "StandingOrderRecord Transfer"
    ),
    ".api.finapi.payments": "FinApiPayments PaymentRoutes",
    ".api.finapi.sync": "FinApiSyncCursor FinApiTransactionSync",
    ".api.finapi.task_models": (
        "BackgroundUpdate Task TaskCallbacks TaskPayload TaskStatus UpdateCompleted UpdateFailed "
        "UpdateOutcome WebFormInfo WebFormRequired outcome_of"
    ),
    ".api.finapi.tasks": "ConnectionUpdates UpdateRoutes",
    ".api.finapi.users": "NewUser PasswordChange User UserChanges Users",
    ".api.finapi.webform": "BankConnectionImport WebForm WebFormCallbacks WebForms WebFormStatus",
    ".core.error_bodies": "FinApiErrorBody WebFormErrorBody",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
