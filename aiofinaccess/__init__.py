"""aiofinaccess: an async token layer and SDK for open-banking access APIs.

This module is the token layer's public surface: the session manager, providers and their
presets, credentials and tokens, stores, events, errors and the integrations' entry points.
finAPI's resources and models are in :mod:`aiofinaccess.finapi`, Everifin's in
:mod:`aiofinaccess.everifin`. Every name loads on first use (PEP 562): ``import aiofinaccess``
imports no submodule until a name is asked for, so an app pays only for what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from . import _exports
from .core._hygiene import install_log_filters as _install_log_filters

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .api.pipeline import ApiClient as ApiClient
    from .api.pipeline import Endpoint as Endpoint
    from .api.pipeline import EndUser as EndUser
    from .api.sync import IncrementalSync as IncrementalSync
    from .core.clock import Clock as Clock
    from .core.error_bodies import OAuthErrorBody as OAuthErrorBody
    from .core.error_bodies import UnparsedErrorBody as UnparsedErrorBody
    from .core.errors import AiofinaccessError as AiofinaccessError
    from .core.errors import ApiError as ApiError
    from .core.errors import AuthenticationError as AuthenticationError
    from .core.errors import AuthorizationDenied as AuthorizationDenied
    from .core.errors import AuthorizationFlowError as AuthorizationFlowError
    from .core.errors import BadRequestError as BadRequestError
    from .core.errors import ClientMismatchError as ClientMismatchError
    from .core.errors import ConfigurationError as ConfigurationError
    from .core.errors import ConflictError as ConflictError
    from .core.errors import EntityExistsError as EntityExistsError
    from .core.errors import ForbiddenError as ForbiddenError
    from .core.errors import InvalidClientError as InvalidClientError
    from .core.errors import LeaseBusyError as LeaseBusyError
    from .core.errors import LockedError as LockedError
    from .core.errors import NotFoundError as NotFoundError
    from .core.errors import OAuthError as OAuthError
    from .core.errors import PausedBeforeSendError as PausedBeforeSendError
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
    from .core.errors import UsageError as UsageError
    from .core.errors import ValidationError as ValidationError
    from .core.lifecycle import InvalidTransition as InvalidTransition
    from .core.lifecycle import RefreshPolicy as RefreshPolicy
    from .core.lifecycle import RetryPolicy as RetryPolicy
    from .core.lifecycle import TokenState as TokenState
    from .core.settings import Duty as Duty
    from .core.settings import Limits as Limits
    from .core.settings import Schedule as Schedule
    from .core.settings import Timeouts as Timeouts
    from .core.tokens import ClientCredentials as ClientCredentials
    from .core.tokens import Secret as Secret
    from .core.tokens import TokenKey as TokenKey
    from .core.tokens import TokenSet as TokenSet
    from .integrations.middleware import BearerAuth as BearerAuth
    from .integrations.web import Connected as Connected
    from .integrations.web import ConnectFlow as ConnectFlow
    from .integrations.web import ExchangeFailed as ExchangeFailed
    from .integrations.web import WebConnect as WebConnect
    from .oauth.authorization import AuthorizationRequest as AuthorizationRequest
    from .oauth.authorization import AuthorizationResponse as AuthorizationResponse
    from .oauth.authorization import build_authorization_request as build_authorization_request
    from .oauth.authorization import parse_callback as parse_callback
    from .oauth.client import OAuthClient as OAuthClient
    from .oauth.client import discover as discover
    from .oauth.presets import Everifin as Everifin
    from .oauth.presets import FinApi as FinApi
    from .oauth.presets import Oidc as Oidc
    from .oauth.providers import ClientAuthMethod as ClientAuthMethod
    from .oauth.providers import Provider as Provider
    from .oauth.providers import RevocationStyle as RevocationStyle
    from .session.events import GrantLost as GrantLost
    from .session.events import ManagerEvent as ManagerEvent
    from .session.events import ManagerStats as ManagerStats
    from .session.events import Refreshed as Refreshed
    from .session.events import RefreshFailed as RefreshFailed
    from .session.events import Rotated as Rotated
    from .session.events import WriteAbandoned as WriteAbandoned
    from .session.manager import SessionManager as SessionManager
    from .stores import TokenStore as TokenStore
    from .stores.codec import FernetCodec as FernetCodec
    from .stores.codec import JsonCodec as JsonCodec
    from .stores.codec import TokenCodec as TokenCodec
    from .stores.memory import MemoryStore as MemoryStore
    from .stores.postgres import PostgresStore as PostgresStore  # needs the `postgres` extra
    from .stores.redis import RedisStore as RedisStore  # needs the `redis` extra
    from .stores.sqlite import SQLiteStore as SQLiteStore

__version__ = "0.2.0.dev0"

_install_log_filters()

#: Each public name, once, by the module it lives in.
_HOMES: Final = {
    ".api.pipeline": "ApiClient Endpoint EndUser",
    ".api.sync": "IncrementalSync",
    ".core.clock": "Clock",
    ".core.error_bodies": "OAuthErrorBody UnparsedErrorBody",
    ".core.errors": (
        "AiofinaccessError ApiError AuthenticationError AuthorizationDenied "
        "AuthorizationFlowError BadRequestError ClientMismatchError ConfigurationError "
        "ConflictError EntityExistsError ForbiddenError InvalidClientError LeaseBusyError "
        "LockedError NotFoundError OAuthError PausedBeforeSendError "
        "RateLimitedError ReauthorizationRequired ServerError StateMismatchError "
        "StoreConflictError StoreError TokenResponseError TransportError "
        "UnexpectedResponseError UnprocessableEntityError UsageError "
        "ValidationError"
    ),
    ".core.lifecycle": "InvalidTransition RefreshPolicy RetryPolicy TokenState",
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
    ".session.events": (
        "GrantLost ManagerEvent ManagerStats Refreshed RefreshFailed Rotated WriteAbandoned"
    ),
    ".session.manager": "SessionManager",
    ".stores": "TokenStore",
    ".stores.codec": "FernetCodec JsonCodec TokenCodec",
    ".stores.memory": "MemoryStore",
    ".stores.postgres": "PostgresStore",
    ".stores.redis": "RedisStore",
    ".stores.sqlite": "SQLiteStore",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
