"""aiofinaccess: an async token layer and SDK for open-banking access APIs.

This module is the token layer's public surface: the session manager, providers and their
presets, credentials and tokens, stores, settings, events, the error tree's first level and the
integrations' entry points. Every error is in :mod:`aiofinaccess.errors`, OAuth's building
blocks in :mod:`aiofinaccess.oauth`, the store protocols and codecs in
:mod:`aiofinaccess.stores`; finAPI's resources and models in :mod:`aiofinaccess.finapi`,
Everifin's in :mod:`aiofinaccess.everifin`. Every name loads on first use (PEP 562):
``import aiofinaccess`` imports no submodule until a name is asked for, so an app pays only for
what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .core import _exports
from .core._hygiene import install_log_filters as _install_log_filters

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .api.pipeline import ApiClient as ApiClient
    from .api.pipeline import Endpoint as Endpoint
    from .api.pipeline import EndUser as EndUser
    from .api.sync import IncrementalSync as IncrementalSync
    from .core.clock import Clock as Clock
    from .core.errors import AiofinaccessError as AiofinaccessError
    from .core.errors import ApiError as ApiError
    from .core.errors import AuthorizationFlowError as AuthorizationFlowError
    from .core.errors import PaymentError as PaymentError
    from .core.errors import ReauthorizationRequired as ReauthorizationRequired
    from .core.errors import StoreError as StoreError
    from .core.errors import TransportError as TransportError
    from .core.errors import UnexpectedResponseError as UnexpectedResponseError
    from .core.errors import UsageError as UsageError
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
    from .integrations.web import WebConnect as WebConnect
    from .integrations.webform_flow import WebFormFlow as WebFormFlow
    from .oauth.presets import Everifin as Everifin
    from .oauth.presets import FinApi as FinApi
    from .oauth.presets import Oidc as Oidc
    from .oauth.providers import Provider as Provider
    from .session.events import GrantLost as GrantLost
    from .session.events import ManagerEvent as ManagerEvent
    from .session.events import Refreshed as Refreshed
    from .session.events import RefreshFailed as RefreshFailed
    from .session.events import Rotated as Rotated
    from .session.events import WriteAbandoned as WriteAbandoned
    from .session.hub import ManagerStats as ManagerStats
    from .session.manager import SessionManager as SessionManager
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
    # The error tree's root and first level; the whole tree is in ``aiofinaccess.errors``.
    ".core.errors": (
        "AiofinaccessError ApiError AuthorizationFlowError PaymentError ReauthorizationRequired "
        "StoreError TransportError UnexpectedResponseError UsageError"
    ),
    ".core.lifecycle": "RefreshPolicy RetryPolicy TokenState",
    ".core.settings": "Duty Limits Schedule Timeouts",
    ".core.tokens": "ClientCredentials Secret TokenKey TokenSet",
    ".integrations.middleware": "BearerAuth",
    ".integrations.web": "Connected ConnectFlow WebConnect",
    ".integrations.webform_flow": "WebFormFlow",
    ".oauth.presets": "Everifin FinApi Oidc",
    ".oauth.providers": "Provider",
    ".session.events": "GrantLost ManagerEvent Refreshed RefreshFailed Rotated WriteAbandoned",
    ".session.hub": "ManagerStats",
    ".session.manager": "SessionManager",
    ".stores.memory": "MemoryStore",
    ".stores.postgres": "PostgresStore",
    ".stores.redis": "RedisStore",
    ".stores.sqlite": "SQLiteStore",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
