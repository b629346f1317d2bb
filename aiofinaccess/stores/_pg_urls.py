"""Reading a :class:`~aiofinaccess.stores.postgres.PostgresStore` URL: the TLS it must use, the
URL asyncpg gets without the TLS options, and how to name it in a log without its password.
No asyncpg, no network: it reads only the certificate files the URL names and ``PGHOST``.

TLS follows libpq's option names, but only the modes that verify or say plainly they do not:

* ``sslmode=verify-full``: TLS, the server's certificate checked against ``sslrootcert`` (a CA
  file; the system's CAs without it) and its name against the host. ``sslcert`` and
  ``sslkey`` add a client certificate.
* ``sslmode=disable``: no TLS.
* no ``sslmode``: ``verify-full``, except for a Unix socket or a loopback host (``localhost``,
  ``127.0.0.1``, ``::1``), which stay plain. A URL without a host is judged by ``PGHOST``,
  where asyncpg will connect.

``require``, ``prefer``, ``allow`` and ``verify-ca`` are refused: each would accept a server
whose certificate is not checked, or not for its name (asyncpg's own default, ``prefer``,
even falls back to plain text). The URL decides alone: ``PGSSLMODE`` and the other
environment variables are not read for TLS. An option given twice is refused.
"""

from __future__ import annotations

import os
import ssl
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..core.errors import ConfigurationError

__all__ = ["SCHEMES", "Target", "describe", "target"]

#: The URL schemes of a PostgreSQL store.
SCHEMES: Final = ("postgresql", "postgres")
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})
#: The TLS options read here (libpq's names), none of which asyncpg may see.
_TLS: Final = frozenset({"sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword"})
_REFUSED: Final = frozenset({"require", "prefer", "allow", "verify-ca"})


def _host(url: str) -> str:
    """The host asyncpg connects to: a query ``host`` wins, then the URL's, then ``PGHOST``
    (``''``: asyncpg's default, a local socket or ``localhost``)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    return query.get("host") or parts.hostname or os.environ.get("PGHOST", "")


def describe(url: str) -> str:
    """``url`` without user, password or options: scheme, host, port and database."""
    parts = urlsplit(url)
    host = _host(url) or "localhost"
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"{parts.scheme}://{host}:{port}/{parts.path.strip('/')}"


class Target:
    """What asyncpg gets for a URL: the URL without TLS options, and ``ssl`` (a verifying
    context, or ``False`` for plain text)."""

    __slots__ = ("ssl", "url", "verified")

    def __init__(self, url: str, tls: ssl.SSLContext | bool) -> None:
        self.url = url
        self.ssl = tls
        #: Whether the connection is TLS with the server's certificate and name checked.
        self.verified = isinstance(tls, ssl.SSLContext)


def target(url: str) -> Target:
    """Read ``url``'s TLS options (see the module's docstring).

    Raises:
        ConfigurationError: Not a PostgreSQL URL, a refused or repeated TLS option, or a
            certificate file that cannot be read (the message never quotes the URL: it may
            hold a password).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        raise ConfigurationError("url is not a valid PostgreSQL URL") from None
    if parts.scheme not in SCHEMES:
        raise ConfigurationError("url must start with postgresql:// or postgres://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, str] = {}
    for name, value in query:
        lowered = name.lower()
        if lowered in _TLS or lowered.startswith("ssl"):
            if lowered not in _TLS:
                raise ConfigurationError(f"url has the TLS option {lowered}, which is not read")
            if lowered in options:
                raise ConfigurationError(f"url gives the TLS option {lowered} more than once")
            options[lowered] = value
    rest = [(name, value) for name, value in query if name.lower() not in _TLS]
    plain = urlunsplit(parts._replace(query=urlencode(rest)))
    host = _host(url)
    local = not host or host.startswith("/") or host in _LOOPBACK
    mode = options.get("sslmode", "").strip().lower() or ("disable" if local else "verify-full")
    if mode in _REFUSED:
        raise ConfigurationError(
            f"url asks for sslmode={mode}, which does not verify the server's certificate and "
            "name; PostgresStore takes sslmode=verify-full or sslmode=disable"
        )
    if mode == "disable":
        extra = sorted(set(options) - {"sslmode"})
        if extra:
            raise ConfigurationError(f"url gives {extra[0]} with TLS turned off (sslmode=disable)")
        return Target(plain, False)
    if mode != "verify-full":
        raise ConfigurationError("url's sslmode must be verify-full or disable")
    return Target(plain, _context(options))


def _context(options: dict[str, str]) -> ssl.SSLContext:
    """A client context that checks the server's certificate and name."""
    root = options.get("sslrootcert") or None
    try:
        context = ssl.create_default_context(cafile=None if root == "system" else root)
        if cert := options.get("sslcert"):
            context.load_cert_chain(
                cert, options.get("sslkey") or None, options.get("sslpassword") or None
            )
        elif options.get("sslkey"):
            raise ConfigurationError("url gives sslkey without sslcert")
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"url's sslrootcert, sslcert or sslkey cannot be read ({type(exc).__name__})"
        ) from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
