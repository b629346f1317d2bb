"""Keycloak's check of a requested ``redirect_uri`` against a client's registered ones.

Keycloak (``RedirectUtils.verifyRedirectUri``) compares exactly, except that a registered URI
ending in ``*`` matches by prefix, and a loopback URI (``http://127.0.0.1``,
``http://localhost``) is compared again without its port, as RFC 8252 (7.3) asks for native
apps that listen on a free port. A relative or unregistered URI is refused with the HTML page
``Invalid parameter: redirect_uri`` and never redirected to: redirecting to an unchecked URI
would hand the code to whoever named it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redirect_allowed"]

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def _matches(candidate: str, registered: str) -> bool:
    if registered.endswith("*"):
        return candidate.startswith(registered[:-1])
    return candidate == registered


def _without_port(uri: str) -> str | None:
    """``uri`` with its port dropped when it is a loopback ``http`` URI, else ``None``."""
    parts = urlsplit(uri)
    host = parts.netloc.rsplit(":", 1)[0] if parts.port is not None else None
    if parts.scheme != "http" or host not in _LOOPBACK_HOSTS:
        return None
    return urlunsplit(parts._replace(netloc=host))


def redirect_allowed(redirect_uri: str, registered: Iterable[str]) -> bool:
    """Whether Keycloak would accept ``redirect_uri`` for a client with ``registered`` URIs."""
    parts = urlsplit(redirect_uri)
    if not parts.scheme or not parts.netloc or parts.fragment:
        return False  # relative, or with a fragment (RFC 6749 3.1.2)
    registered = tuple(registered)
    if any(_matches(redirect_uri, uri) for uri in registered):
        return True
    loopback = _without_port(redirect_uri)
    return loopback is not None and any(_matches(loopback, uri) for uri in registered)
