"""OAuth's building blocks, for flows the session manager does not run for you: authorization
requests and callbacks, the token-endpoint client and discovery, and how a provider takes its
client's credentials and revocations. Providers and their presets are top-level
(``from aiofinaccess import Provider, FinApi, Everifin, Oidc``).

Wall: imports ``core`` (and aiohttp). Never ``stores``, ``session``, ``api``, ``integrations``,
``cli`` or ``sandbox``: it knows nothing of where tokens are kept or who renews them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..core import _exports

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .authorization import AuthorizationRequest as AuthorizationRequest
    from .authorization import AuthorizationResponse as AuthorizationResponse
    from .authorization import build_authorization_request as build_authorization_request
    from .authorization import parse_callback as parse_callback
    from .client import OAuthClient as OAuthClient
    from .client import discover as discover
    from .providers import ClientAuthMethod as ClientAuthMethod
    from .providers import RevocationStyle as RevocationStyle

#: Each public name, once, by the module it lives in.
_HOMES: Final = {
    ".authorization": (
        "AuthorizationRequest AuthorizationResponse build_authorization_request parse_callback"
    ),
    ".client": "OAuthClient discover",
    ".providers": "ClientAuthMethod RevocationStyle",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
