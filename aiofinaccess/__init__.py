"""aiofinaccess: an async token layer and SDK for open-banking access APIs.

This module is the public import surface; everything in ``__all__`` is supported API. The
submodules are the rooms of the house (``tokens``, ``lifecycle``, ``providers``, ``errors``,
``oauth``, ``authorization``, ``stores``, ``manager``, ``middleware``); import from them only
what is not re-exported here, knowing it may move.
"""

from __future__ import annotations

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
from .api.webform import BankConnectionImport, WebForm, WebFormCallbacks, WebForms, WebFormStatus
from .core._hygiene import install_log_filters as _install_log_filters
from .core.clock import SYSTEM_CLOCK, Clock, SystemClock
from .core.errors import (
    AiofinaccessError,
    ApiError,
    AuthenticationError,
    AuthorizationDenied,
    AuthorizationFlowError,
    BadRequestError,
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
from .oauth.providers import ClientAuthMethod, Everifin, FinApi, Oidc, Provider, RevocationStyle
from .session.events import Event, ManagerStats, ReauthRequired, Refreshed, RefreshFailed, Rotated
from .session.manager import SessionManager
from .stores import ChangeFeed, PendingAuthorizations, RefreshDuty, TokenStore, Versioned
from .stores.codec import FernetCodec, JsonCodec, TokenCodec
from .stores.memory import MemoryStore
from .stores.sqlite import SQLiteStore

__version__ = "0.1.0.dev0"

_install_log_filters()


def __getattr__(name: str) -> object:
    # RedisStore needs the optional `redis` extra: import it only when asked for.
    if name == "RedisStore":
        from .stores.redis import RedisStore  # noqa: PLC0415

        return RedisStore
    raise AttributeError(f"module 'aiofinaccess' has no attribute {name!r}")


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
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "ConnectFlow",
    "Connected",
    "DailyBalance",
    "DailyBalances",
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
    "Secret",
    "ServerError",
    "SessionManager",
    "StateMismatchError",
    "StoreConflictError",
    "StoreError",
    "SystemClock",
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
