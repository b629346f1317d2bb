"""aiofinaccess: an async token layer and SDK for open-banking access APIs.

This module is the public import surface; everything in ``__all__`` is supported API, precisely
typed, and loaded on first use: ``import aiofinaccess`` imports no submodule until a name is
asked for (PEP 562), so an app pays only for what it uses (no aiohttp.web without
``WebConnect``, no SQLite driver without ``SQLiteStore``, no resource module without its
class). The subpackages are the layers of the house (``core``, ``oauth``, ``stores``,
``session``, ``api``, ``integrations``, ``cli``); import from them only what is not re-exported
here, knowing it may move.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

from .core._hygiene import install_log_filters as _install_log_filters

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .api.bankconnect import (
        Account,
        Balance,
        BankConnect,
        BankConnectRoutes,
        Transaction,
        TransactionSync,
    )
    from .api.finapi_data import AccountFilters, FinApiData, FinApiDataRoutes, TransactionFilters
    from .api.finapi_models import (
        BankConnection,
        DailyBalance,
        DailyBalances,
        FinApiAccount,
        FinApiBank,
        FinApiTransaction,
        Paging,
        TransactionPage,
    )
    from .api.finapi_sync import FinApiSyncCursor, FinApiTransactionSync, IncrementalSync
    from .api.pipeline import ApiClient, Endpoint, EndUser
    from .api.users import NewUser, PasswordChange, User, UserChanges, Users
    from .api.webform import (
        BankConnectionImport,
        WebForm,
        WebFormCallbacks,
        WebForms,
        WebFormStatus,
    )
    from .core.clock import SYSTEM_CLOCK, Clock, SystemClock
    from .core.errors import (
        AiofinaccessError,
        ApiError,
        AuthenticationError,
        AuthorizationDenied,
        AuthorizationFlowError,
        BadRequestError,
        ClientMismatchError,
        ConfigurationError,
        ConflictError,
        EntityExistsError,
        EverifinErrorBody,
        FinApiErrorBody,
        ForbiddenError,
        InvalidClientError,
        LockedError,
        NotFoundError,
        OAuthError,
        OAuthErrorBody,
        RateLimitedError,
        ReauthorizationRequired,
        ServerError,
        StateMismatchError,
        StoreConflictError,
        StoreError,
        TokenResponseError,
        TransportError,
        UnexpectedResponseError,
        UnparsedErrorBody,
        UnprocessableEntityError,
        UsageError,
        ValidationError,
    )
    from .core.lifecycle import RefreshPolicy, RetryPolicy, TokenState
    from .core.settings import Duty, Limits, Schedule, Timeouts
    from .core.tokens import ClientCredentials, Secret, TokenKey, TokenSet
    from .integrations.middleware import BearerAuth
    from .integrations.web import Connected, ConnectFlow, ExchangeFailed, WebConnect
    from .oauth.authorization import (
        AuthorizationRequest,
        AuthorizationResponse,
        build_authorization_request,
        parse_callback,
    )
    from .oauth.client import OAuthClient, discover
    from .oauth.presets import Everifin, FinApi, Oidc
    from .oauth.providers import ClientAuthMethod, Provider, RevocationStyle
    from .session.events import (
        Event,
        ManagerStats,
        ReauthRequired,
        Refreshed,
        RefreshFailed,
        Rotated,
    )
    from .session.manager import SessionManager
    from .stores import ChangeFeed, PendingAuthorizations, RefreshDuty, TokenStore, Versioned
    from .stores.codec import FernetCodec, JsonCodec, TokenCodec
    from .stores.memory import MemoryStore
    from .stores.redis import RedisStore  # needs the `redis` extra
    from .stores.sqlite import SQLiteStore

__version__ = "0.1.0.dev0"

_install_log_filters()

#: The module each public name lives in (the imports above, as data; a test keeps them equal).
_HOMES: Final[dict[str, str]] = {
    ".api.bankconnect": (
        "Account Balance BankConnect BankConnectRoutes Transaction TransactionSync"
    ),
    ".api.finapi_data": "AccountFilters FinApiData FinApiDataRoutes TransactionFilters",
    ".api.finapi_models": (
        "BankConnection DailyBalance DailyBalances FinApiAccount FinApiBank "
        "FinApiTransaction Paging TransactionPage"
    ),
    ".api.finapi_sync": "FinApiSyncCursor FinApiTransactionSync IncrementalSync",
    ".api.pipeline": "ApiClient Endpoint EndUser",
    ".api.users": "NewUser PasswordChange User UserChanges Users",
    ".api.webform": "BankConnectionImport WebForm WebFormCallbacks WebForms WebFormStatus",
    ".core.clock": "SYSTEM_CLOCK Clock SystemClock",
    ".core.errors": (
        "AiofinaccessError ApiError AuthenticationError AuthorizationDenied "
        "AuthorizationFlowError BadRequestError ClientMismatchError ConfigurationError "
        "ConflictError "
        "EntityExistsError EverifinErrorBody FinApiErrorBody ForbiddenError "
        "InvalidClientError LockedError NotFoundError OAuthError OAuthErrorBody "
        "RateLimitedError ReauthorizationRequired ServerError StateMismatchError "
        "StoreConflictError StoreError TokenResponseError TransportError "
        "UnexpectedResponseError UnparsedErrorBody UnprocessableEntityError UsageError "
        "ValidationError"
    ),
    ".core.lifecycle": "RefreshPolicy RetryPolicy TokenState",
    ".core.settings": "Duty Limits Schedule Timeouts",
    ".core.tokens": "ClientCredentials Secret TokenKey TokenSet",
    ".integrations.middleware": "BearerAuth",
    ".integrations.web": "Connected ConnectFlow ExchangeFailed WebConnect",
    ".oauth.authorization": (
        "AuthorizationRequest AuthorizationResponse build_authorization_request parse_callback"
    ),
    ".oauth.client": "OAuthClient discover",
    ".oauth.presets": "Everifin FinApi Oidc",
    ".oauth.providers": "ClientAuthMethod Provider RevocationStyle",
    ".session.events": "Event ManagerStats ReauthRequired Refreshed RefreshFailed Rotated",
    ".session.manager": "SessionManager",
    ".stores": "ChangeFeed PendingAuthorizations RefreshDuty TokenStore Versioned",
    ".stores.codec": "FernetCodec JsonCodec TokenCodec",
    ".stores.memory": "MemoryStore",
    ".stores.redis": "RedisStore",
    ".stores.sqlite": "SQLiteStore",
}
_HOME_OF: Final = {name: module for module, names in _HOMES.items() for name in names.split()}

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error

    def __getattr__(name: str) -> object:
        module = _HOME_OF.get(name)
        if module is None:
            raise AttributeError(f"module 'aiofinaccess' has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # the next lookup is a plain module attribute
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "SYSTEM_CLOCK",
    "Account",
    "AccountFilters",
    "AiofinaccessError",
    "ApiClient",
    "ApiError",
    "AuthenticationError",
    "AuthorizationDenied",
    "AuthorizationFlowError",
    "AuthorizationRequest",
    "AuthorizationResponse",
    "BadRequestError",
    "Balance",
    "BankConnect",
    "BankConnectRoutes",
    "BankConnection",
    "BankConnectionImport",
    "BearerAuth",
    "ChangeFeed",
    "ClientAuthMethod",
    "ClientCredentials",
    "ClientMismatchError",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "ConnectFlow",
    "Connected",
    "DailyBalance",
    "DailyBalances",
    "Duty",
    "EndUser",
    "Endpoint",
    "EntityExistsError",
    "Event",
    "Everifin",
    "EverifinErrorBody",
    "ExchangeFailed",
    "FernetCodec",
    "FinApi",
    "FinApiAccount",
    "FinApiBank",
    "FinApiData",
    "FinApiDataRoutes",
    "FinApiErrorBody",
    "FinApiSyncCursor",
    "FinApiTransaction",
    "FinApiTransactionSync",
    "ForbiddenError",
    "IncrementalSync",
    "InvalidClientError",
    "JsonCodec",
    "Limits",
    "LockedError",
    "ManagerStats",
    "MemoryStore",
    "NewUser",
    "NotFoundError",
    "OAuthClient",
    "OAuthError",
    "OAuthErrorBody",
    "Oidc",
    "Paging",
    "PasswordChange",
    "PendingAuthorizations",
    "Provider",
    "RateLimitedError",
    "ReauthRequired",
    "ReauthorizationRequired",
    "RedisStore",
    "RefreshDuty",
    "RefreshFailed",
    "RefreshPolicy",
    "Refreshed",
    "RetryPolicy",
    "RevocationStyle",
    "Rotated",
    "SQLiteStore",
    "Schedule",
    "Secret",
    "ServerError",
    "SessionManager",
    "StateMismatchError",
    "StoreConflictError",
    "StoreError",
    "SystemClock",
    "Timeouts",
    "TokenCodec",
    "TokenKey",
    "TokenResponseError",
    "TokenSet",
    "TokenState",
    "TokenStore",
    "Transaction",
    "TransactionFilters",
    "TransactionPage",
    "TransactionSync",
    "TransportError",
    "UnexpectedResponseError",
    "UnparsedErrorBody",
    "UnprocessableEntityError",
    "UsageError",
    "User",
    "UserChanges",
    "Users",
    "ValidationError",
    "Versioned",
    "WebConnect",
    "WebForm",
    "WebFormCallbacks",
    "WebFormStatus",
    "WebForms",
    "build_authorization_request",
    "discover",
    "parse_callback",
]
