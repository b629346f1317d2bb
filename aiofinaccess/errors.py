"""Every error aiofinaccess raises, and the shapes of the error bodies an answer carries.

The tree is drawn in :mod:`aiofinaccess.core.errors`. Its root and first level are also
top-level (``aiofinaccess.ApiError``, ``aiofinaccess.ReauthorizationRequired``...), the same
classes; the finer ones (``NotFoundError``, ``RateLimitedError``, ``StoreConflictError``...) are
here only. finAPI's and Everifin's body shapes are in :mod:`aiofinaccess.finapi` and
:mod:`aiofinaccess.everifin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .core import _exports

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .core.error_bodies import OAuthErrorBody as OAuthErrorBody
    from .core.error_bodies import UnparsedErrorBody as UnparsedErrorBody
    from .core.errors import AiofinaccessError as AiofinaccessError
    from .core.errors import ApiError as ApiError
    from .core.errors import AuthenticationError as AuthenticationError
    from .core.errors import AuthorizationDenied as AuthorizationDenied
    from .core.errors import AuthorizationFlowError as AuthorizationFlowError
    from .core.errors import BadRequestError as BadRequestError
    from .core.errors import CallbackRejected as CallbackRejected
    from .core.errors import CallbackTooLarge as CallbackTooLarge
    from .core.errors import CallbackUnavailable as CallbackUnavailable
    from .core.errors import ClientMismatchError as ClientMismatchError
    from .core.errors import ConfigurationError as ConfigurationError
    from .core.errors import ConflictError as ConflictError
    from .core.errors import EntityExistsError as EntityExistsError
    from .core.errors import ForbiddenError as ForbiddenError
    from .core.errors import InvalidAmountError as InvalidAmountError
    from .core.errors import InvalidClientError as InvalidClientError
    from .core.errors import InvalidIbanError as InvalidIbanError
    from .core.errors import LeaseBusyError as LeaseBusyError
    from .core.errors import LockedError as LockedError
    from .core.errors import MalformedCallback as MalformedCallback
    from .core.errors import NotFoundError as NotFoundError
    from .core.errors import OAuthError as OAuthError
    from .core.errors import PausedBeforeSendError as PausedBeforeSendError
    from .core.errors import PaymentError as PaymentError
    from .core.errors import PaymentFieldError as PaymentFieldError
    from .core.errors import PaymentNotCreated as PaymentNotCreated
    from .core.errors import PaymentOutcomeUnknown as PaymentOutcomeUnknown
    from .core.errors import RateLimitedError as RateLimitedError
    from .core.errors import ReauthorizationRequired as ReauthorizationRequired
    from .core.errors import ServerError as ServerError
    from .core.errors import StateMismatchError as StateMismatchError
    from .core.errors import StoreConflictError as StoreConflictError
    from .core.errors import StoreError as StoreError
    from .core.errors import TokenResponseError as TokenResponseError
    from .core.errors import TransportError as TransportError
    from .core.errors import UnexpectedResponseError as UnexpectedResponseError
    from .core.errors import UnprocessableEntityError as UnprocessableEntityError
    from .core.errors import UpdateBudgetExhausted as UpdateBudgetExhausted
    from .core.errors import UsageError as UsageError
    from .core.errors import ValidationError as ValidationError
    from .core.errors import WebhookRejected as WebhookRejected
    from .core.lifecycle import InvalidTransition as InvalidTransition
    from .integrations.web import ExchangeFailed as ExchangeFailed

#: Each public name, once, by the module it lives in.
_HOMES: Final = {
    ".core.error_bodies": "OAuthErrorBody UnparsedErrorBody",
    ".core.errors": (
        "AiofinaccessError ApiError AuthenticationError AuthorizationDenied "
        "AuthorizationFlowError BadRequestError CallbackRejected CallbackTooLarge "
        "CallbackUnavailable ClientMismatchError ConfigurationError "
        "ConflictError EntityExistsError ForbiddenError InvalidAmountError InvalidClientError "
        "InvalidIbanError LeaseBusyError LockedError MalformedCallback NotFoundError OAuthError "
        "PausedBeforeSendError PaymentError PaymentFieldError PaymentNotCreated "
        "PaymentOutcomeUnknown "
        "RateLimitedError ReauthorizationRequired ServerError StateMismatchError "
        "StoreConflictError StoreError TokenResponseError TransportError "
        "UnexpectedResponseError UnprocessableEntityError UpdateBudgetExhausted UsageError "
        "ValidationError WebhookRejected"
    ),
    ".core.lifecycle": "InvalidTransition",
    ".integrations.web": "ExchangeFailed",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
