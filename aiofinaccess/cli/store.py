"""Which token store a command opens: written once, for every command and the worker.

The setting is a SQLite path, a Redis URL (``redis://``, ``rediss://``, ``unix://``,
``redis+cluster://``, ``rediss+cluster://``) or a PostgreSQL URL (``postgresql://``,
``postgres://``); any other ``scheme://`` is refused, never taken for a path, and a URL that
cannot be read is refused without being quoted. A Redis password comes from the environment, a
private file of ours (:mod:`aiofinaccess.cli.files`) or the URL; two at once are refused. A
PostgreSQL password comes from the URL or libpq's ``PGPASSWORD`` and ``~/.pgpass``, which
asyncpg reads. Every kind gets the encryption keys. Precedence: docs/guides/cli.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

import attrs

from ..core.errors import AiofinaccessError
from ..stores import _pg_urls
from ..stores._redis_urls import describe
from .files import UntrustedFileError, loose_directory, read_trusted

if TYPE_CHECKING:
    from ..stores.codec import TokenCodec
    from ..stores.postgres import PostgresStore
    from ..stores.redis import RedisStore
    from ..stores.sqlite import SQLiteStore

__all__ = [
    "POSTGRES_SCHEMES",
    "REDIS_SCHEMES",
    "StoreLocation",
    "StoreSettingError",
    "holds_secret",
    "locate",
]

#: The schemes of a Redis store, as :class:`~aiofinaccess.stores.redis.RedisStore` reads them.
REDIS_SCHEMES: Final = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
#: The schemes of a PostgreSQL store (:class:`~aiofinaccess.stores.postgres.PostgresStore`).
POSTGRES_SCHEMES: Final = _pg_urls.SCHEMES
#: ``scheme:`` at the start (two letters at least: ``C:`` is a Windows drive).
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_DEFAULT_PREFIX: Final = "aiofinaccess:"
#: Query options redis-py takes as the credentials (``?password=`` is the password).
_QUERY_CREDENTIALS: Final = frozenset({"password", "username"})
#: A password file holds one line; a bound on what a mistaken path makes us read.
_PASSWORD_FILE_LIMIT: Final = 4096


class StoreSettingError(AiofinaccessError):
    """The store setting names no store this command line can open; the message never
    quotes a URL (it may hold a password)."""


@attrs.frozen
class StoreLocation:
    """A SQLite file (``path``), or a Redis server or cluster or a PostgreSQL database
    (``url``, password included)."""

    path: Path | None = None
    url: str | None = attrs.field(default=None, repr=False)
    prefix: str = _DEFAULT_PREFIX

    @property
    def label(self) -> str:
        """The store as shown to a user: its path, or its URL without user or password."""
        if self.path is not None:
            return str(self.path)
        if self.postgres:
            return _pg_urls.describe(self.url or "")
        try:
            return describe(self.url or "")
        except ValueError:  # never for a URL from locate(), which parsed it
            return "a Redis URL that cannot be read"

    @property
    def postgres(self) -> bool:
        """Whether the store is a PostgreSQL database."""
        return self.url is not None and urlsplit(self.url).scheme in POSTGRES_SCHEMES

    @property
    def settings_path(self) -> Path | None:
        """Where remembered settings live: beside a SQLite store; a Redis store has none."""
        if self.path is None:
            return None
        return self.path.with_name(self.path.name + ".settings.json")

    def exists(self) -> bool:
        """Whether there is a store to read (a Redis server is asked when opened)."""
        return self.path is None or self.path.exists()

    def open(
        self, codec: TokenCodec | None, prefix: str | None = None
    ) -> SQLiteStore | RedisStore | PostgresStore:
        """The store, encrypted when ``codec`` is given (a SQLite store's directory is
        created, mode 0700). A PostgreSQL store uses its default schema (``prefix`` is
        Redis's)."""
        if self.postgres:
            from ..stores.postgres import PostgresStore  # noqa: PLC0415  (the postgres extra)

            return PostgresStore(self.url or "", codec=codec)
        if self.url is not None:
            from ..stores.redis import RedisStore  # noqa: PLC0415  (the optional redis extra)

            return RedisStore(self.url, prefix=prefix or self.prefix, codec=codec)
        from ..stores.sqlite import SQLiteStore  # noqa: PLC0415

        assert self.path is not None  # noqa: S101  (one of the two is always set)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # a file on the way: SQLiteStore names it
            pass
        except OSError as exc:
            raise StoreSettingError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        with contextlib.suppress(OSError):  # else SQLiteStore names what is wrong
            # SQLiteStore refuses this directory too; its advice does not know /tmp is shared.
            if problem := loose_directory(self.path.parent, "the store's files"):
                raise StoreSettingError(f"store {problem}")
        return SQLiteStore(self.path, codec=codec)


def _read_password_file(name: str) -> str:
    """The first line of the password file, read only if no one else can write or read it
    (:mod:`aiofinaccess.cli.files`)."""
    path = Path(name).expanduser()
    what = f"the Redis password file {path}"
    try:
        data = read_trusted(path, what, secret=True, limit=_PASSWORD_FILE_LIMIT)
        if data is None:
            raise StoreSettingError(f"cannot read {what}: no such file")
        lines = data.decode("utf-8").splitlines()
    except UntrustedFileError as exc:
        raise StoreSettingError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StoreSettingError(f"cannot read {what}: {reason}") from None
    if not lines or not lines[0].strip():
        raise StoreSettingError(f"{what} is empty")
    return lines[0].strip()


def _split(url: str) -> SplitResult:
    """``url`` parsed, port included.

    Raises:
        StoreSettingError: A port that is no number from 0 to 65535, a ``[`` left open (the
            message never quotes the URL).
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # read lazily: a bad one raises only here
    except ValueError:
        raise StoreSettingError(
            "the store's Redis URL cannot be read (a port that is not a number from 0 to "
            "65535, or a '[' left open?); it is not shown: it may hold a password"
        ) from None
    return parts


def _has_password(parts: SplitResult) -> bool:
    """Whether redis-py would read a password (``:password@`` or ``?password=``)."""
    query = {name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    return bool(parts.password) or "password" in query


def holds_secret(value: str) -> bool:
    """Whether a store setting may hold a secret: a password, or a user part or query
    credential (a password typed where the user name goes is as secret). A URL that cannot
    be read counts when it has a ``@`` or a query credential."""
    try:
        parts = urlsplit(value)
        query = {name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    except ValueError:
        lowered = value.lower()
        return "@" in value or any(f"{name}=" in lowered for name in _QUERY_CREDENTIALS)
    return bool(parts.username or parts.password) or bool(query & _QUERY_CREDENTIALS)


def _check_shape(parts: SplitResult) -> None:
    """Refuse what :func:`describe` would print a password from: a path (the db) that is not
    a number, as when a password holds an unencoded ``/``, or a query db that is not one."""
    dbs = [value for name, value in parse_qsl(parts.query) if name.lower() == "db"]
    if any(not db.isdigit() for db in dbs):
        raise StoreSettingError("the store's Redis URL has a db that is not a number")
    if parts.scheme == "unix":
        if "@" in parts.path:
            raise StoreSettingError(
                "the store's unix:// URL has a '@' in its socket path: a password with an "
                "unencoded '/'? (write it as %2F)"
            )
    elif parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise StoreSettingError(
            "the store's Redis URL has a path that is not a db number: a password with an "
            "unencoded '/'? (write it as %2F)"
        )


def _with_password(url: str, password: str) -> str:
    """``url`` with ``password`` in its user part (any user name kept)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0] if at else ""
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return parts._replace(netloc=netloc).geturl()


def _redis(url: str, data: Mapping[str, Any], *, from_flag: bool, password_file: str | None) -> str:
    """The Redis URL with its password from wherever it was given (once)."""
    parts = _split(url)
    _check_shape(parts)
    given: list[tuple[str, str]] = []
    if _has_password(parts):
        if from_flag:
            sys.stderr.write(
                "aiofinaccess: warning: a password in --store is visible to other local users "
                "(ps, /proc); use AIOFINACCESS_REDIS_PASSWORD, --redis-password-file PATH or "
                "AIOFINACCESS_REDIS_PASSWORD_FILE\n"
            )
        given.append(("the store URL", ""))
    if os.environ.get("AIOFINACCESS_REDIS_PASSWORD"):
        given.append(("AIOFINACCESS_REDIS_PASSWORD", os.environ["AIOFINACCESS_REDIS_PASSWORD"]))
    file = (
        password_file
        or os.environ.get("AIOFINACCESS_REDIS_PASSWORD_FILE")
        or data.get("redis_password_file")
    )
    if file:
        given.append((f"the password file {file}", _read_password_file(str(file))))
    if len(given) > 1:
        sources = " and ".join(source for source, _ in given)
        raise StoreSettingError(f"the Redis password comes from more than one source ({sources})")
    if given and given[0][1]:
        return _with_password(url, given[0][1])
    return url


def _postgres(scheme: str, chosen: str, *, from_flag: bool) -> str:
    """The PostgreSQL URL, its TLS options checked now (before any command runs)."""
    if not chosen[len(scheme) + 1 :].startswith("//"):
        raise StoreSettingError(
            f"the store looks like a PostgreSQL URL without its '//' (write {scheme}://; a "
            f"SQLite file named so: ./{scheme}:...)"
        )
    url = scheme + chosen[len(scheme) :]
    try:
        _pg_urls.target(url)
    except AiofinaccessError as exc:  # names the option, never the URL
        raise StoreSettingError(f"the store's PostgreSQL {exc}") from None
    if from_flag and urlsplit(url).password:
        sys.stderr.write(
            "aiofinaccess: warning: a password in --store is visible to other local users "
            "(ps, /proc); use PGPASSWORD or ~/.pgpass\n"
        )
    return url


def locate(
    chosen: str | None, data: Mapping[str, Any], *, from_flag: bool, password_file: str | None
) -> StoreLocation:
    """The store named by ``chosen`` (the setting's value, ``None`` for the default).

    Raises:
        StoreSettingError: Another scheme than a Redis one; a Redis URL without ``//``, with a
            bad port or a db that is not a number; a Redis password given twice, or in a file
            that cannot be read or that others could write or read.
    """
    prefix = os.environ.get("AIOFINACCESS_REDIS_PREFIX") or data.get("redis_prefix")
    prefix = str(prefix) if prefix else _DEFAULT_PREFIX
    chosen = chosen.strip() if chosen else None  # a blank pasted before a URL
    if not chosen:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
        return StoreLocation(Path(base) / "aiofinaccess" / "tokens.db", prefix=prefix)
    found = _SCHEME.match(chosen)
    if found is not None:
        scheme = found.group(1).lower()
        if scheme in POSTGRES_SCHEMES:
            return StoreLocation(url=_postgres(scheme, chosen, from_flag=from_flag), prefix=prefix)
        if scheme in REDIS_SCHEMES:
            if not chosen[found.end() :].startswith("//"):
                raise StoreSettingError(
                    f"the store looks like a Redis URL without its '//' (write {scheme}://; "
                    f"a SQLite file named so: ./{scheme}:...)"
                )
            url = scheme + chosen[len(scheme) :]
            redis_url = _redis(url, data, from_flag=from_flag, password_file=password_file)
            return StoreLocation(url=redis_url, prefix=prefix)
        if chosen[found.end() :].startswith("//"):
            raise StoreSettingError(
                f"the store must be a SQLite path, a Redis URL (redis://, rediss://, "
                f"unix://, redis+cluster://, rediss+cluster://) or a PostgreSQL URL "
                f"(postgresql://), not a {scheme}:// URL"
            )
    if "://" in chosen:  # a mistyped URL: never shown (nor created) as a path
        raise StoreSettingError(
            "the store must be a SQLite path, a Redis URL or a PostgreSQL URL starting with its "
            "scheme (redis://, rediss://, unix://, redis+cluster://, rediss+cluster://, "
            "postgresql://)"
        )
    return StoreLocation(Path(chosen).expanduser(), prefix=prefix)
