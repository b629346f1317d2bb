"""aiofinaccess: an async token layer and SDK for open-banking access APIs.

This module is the public import surface; everything in ``__all__`` is supported API. The
submodules are the rooms of the house (``tokens``, ``lifecycle``, ``providers``, ``errors``,
``oauth``, ``authorization``, ``stores``, ``manager``, ``middleware``); import from them only
what is not re-exported here, knowing it may move.
"""

from __future__ import annotations

from .authorization import (
    AuthorizationRequest,
    AuthorizationResponse,
    build_authorization_request,
    parse_callback,
)
from .clock import SYSTEM_CLOCK, Clock, SystemClock
from .errors import (
    AiofinaccessError,
    ApiError,
    AuthorizationDenied,
    AuthorizationFlowError,
    ConfigurationError,
    EverifinErrorBody,
    FinApiErrorBody,
    InvalidClientError,
    OAuthError,
    OAuthErrorBody,
    ReauthorizationRequired,
    StateMismatchError,
    StoreConflictError,
    StoreError,
    TokenResponseError,
    TransportError,
    UnparsedErrorBody,
    UsageError,
)
from .lifecycle import RefreshPolicy, TokenState
from .manager import ManagerStats, SessionManager
from .middleware import BearerAuth
from .oauth import OAuthClient, discover
from .providers import ClientAuthMethod, Everifin, FinApi, Oidc, Provider, RevocationStyle
from .stores import TokenStore, Versioned
from .stores.memory import MemoryStore
from .tokens import ClientCredentials, Secret, TokenKey, TokenSet

__version__ = "0.1.0.dev0"

__all__ = [
    "SYSTEM_CLOCK",
    "AiofinaccessError",
    "ApiError",
    "AuthorizationDenied",
    "AuthorizationFlowError",
    "AuthorizationRequest",
    "AuthorizationResponse",
    "BearerAuth",
    "ClientAuthMethod",
    "ClientCredentials",
    "Clock",
    "ConfigurationError",
    "Everifin",
    "EverifinErrorBody",
    "FinApi",
    "FinApiErrorBody",
    "InvalidClientError",
    "ManagerStats",
    "MemoryStore",
    "OAuthClient",
    "OAuthError",
    "OAuthErrorBody",
    "Oidc",
    "Provider",
    "ReauthorizationRequired",
    "RefreshPolicy",
    "RevocationStyle",
    "Secret",
    "SessionManager",
    "StateMismatchError",
    "StoreConflictError",
    "StoreError",
    "SystemClock",
    "TokenKey",
    "TokenResponseError",
    "TokenSet",
    "TokenState",
    "TokenStore",
    "TransportError",
    "UnparsedErrorBody",
    "UsageError",
    "Versioned",
    "build_authorization_request",
    "discover",
    "parse_callback",
]
