"""The ``tokens`` and ``users`` commands, which :mod:`aiofinaccess.cli.main` calls (``login``:
:mod:`aiofinaccess.cli.login`).

Output never carries a token, secret or code: token sets are shown by expiry, presence and a
SHA-256 fingerprint (``#1a2b3c4d``). Expected failures raise :class:`CliError` or an SDK error,
which the entry point prints as one line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import time
from typing import TYPE_CHECKING, Any

from ..api.finapi.users import NewUser, Users
from ..core.settings import Schedule
from ..core.tokens import Secret, TokenKey, TokenSet, client_label
from ..session.manager import SessionManager
from ..stores.migrate import reseal
from .addresses import client_names, describe, resolve
from .config import FIELDS, CliError, Config, ProviderSettings
from .output import Output
from .secrets import client_secret_flag

if TYPE_CHECKING:
    from ..stores.postgres import PostgresStore
    from ..stores.redis import RedisStore
    from ..stores.sqlite import SQLiteStore

__all__ = [
    "describe_set",
    "provider_flags",
    "tokens_delete",
    "tokens_list",
    "tokens_manage",
    "tokens_reseal",
    "tokens_show",
    "users_create",
]


def provider_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The provider settings given as flags (``None`` where a flag was not given)."""
    flags = {field: getattr(args, field, None) for field in FIELDS}
    flags["sandbox"] = getattr(args, "sandbox", None)
    flags["client_secret"] = client_secret_flag(
        flags["client_secret"], getattr(args, "client_secret_file", None)
    )
    return flags


# -- tokens --------------------------------------------------------------------------------------


def _when(moment: float | None, now: float) -> str:
    if moment is None:
        return "never expires"
    left = moment - now
    span = _span(abs(left))
    return f"valid for {span}" if left > 0 else f"expired {span} ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


def _fp(secret: Secret | None) -> str | None:
    return None if secret is None else f"#{secret.fingerprint()[:8]}"


def _refresh(token_set: TokenSet, now: float) -> str:
    if token_set.refresh_token is None:
        return "none"
    if token_set.refresh_expires_at is None:
        return "present (no expiry given)"
    return _when(token_set.refresh_expires_at, now)


def describe_set(token_set: TokenSet, now: float) -> str:
    access = _when(token_set.expires_at, now)
    return f"access token {access}; refresh token {_refresh(token_set, now)}"


def _record(key: TokenKey, token_set: TokenSet) -> dict[str, Any]:
    """Everything about a stored set except its secrets (presence and fingerprints only)."""
    return {
        "provider": key.provider,
        "subject": key.subject,
        "client": key.client,
        "token_type": token_set.token_type,
        "issued_at": _iso(token_set.issued_at),
        "expires_at": _iso(token_set.expires_at),
        "access_token": _fp(token_set.access_token),
        "refresh_token": _fp(token_set.refresh_token),
        "refresh_expires_at": _iso(token_set.refresh_expires_at),
        "id_token": _fp(token_set.id_token),
        "scope": token_set.scope,
        "extra": sorted(token_set.extra),
    }


_LIST_BATCH = 500


async def _read_batch(
    store: SQLiteStore | RedisStore | PostgresStore, keys: list[TokenKey]
) -> list[tuple[TokenKey, TokenSet]]:
    found = await store.get_many(keys) if keys else {}
    return [(key, stored.token_set) for key, stored in found.items()]


async def tokens_list(args: argparse.Namespace, config: Config, out: Output) -> int:
    """One line per stored token set, secrets redacted."""
    rows: list[tuple[TokenKey, TokenSet]] = []
    _require_store(config)  # listing never creates a store
    async with contextlib.aclosing(config.open_store()) as store:
        # The keys stream from one query; their sets are read a batch at a time.
        batch: list[TokenKey] = []
        async for key in store.keys(args.provider):
            batch.append(key)
            if len(batch) >= _LIST_BATCH:
                rows += await _read_batch(store, batch)
                batch = []
        rows += await _read_batch(store, batch)
        if skipped := store.stats.unreadable_records:  # logged by key hash with -v
            sets = "token set" if skipped == 1 else "token sets"
            was = "was" if skipped == 1 else "were"
            out.error(
                "aiofinaccess tokens list",
                f"{skipped} stored {sets} could not be read and {was} skipped "
                f"({store.stats.last_unreadable}; -v names {'it' if skipped == 1 else 'them'} "
                "by key hash)",
            )
    rows.sort(key=lambda row: (row[0].provider, row[0].subject or "", row[0].client or ""))
    if args.json:
        out.json([_record(key, token_set) for key, token_set in rows])
        return 0
    if not rows:
        out.echo(f"no token sets in {config.store.label}")
        return 0
    now = time.time()
    names = client_names(key for key, _ in rows)
    out.table(
        ("PROVIDER", "SUBJECT", "ACCESS TOKEN", "REFRESH TOKEN", "SCOPE"),
        [
            (
                key.provider,
                key.subject or describe(key, names[key]).removeprefix(f"{key.provider} "),
                _when(ts.expires_at, now),
                _refresh(ts, now),
                ts.scope or "",
            )
            for key, ts in rows
        ],
    )
    return 0


def _require_store(config: Config) -> None:
    """Refuse an absent SQLite store (a mistyped path is no empty store) before anything
    creates it."""
    if not config.store.exists():
        raise CliError(f"no token store at {config.store.label}: no such file")


async def _address(
    args: argparse.Namespace, config: Config, store: SQLiteStore | RedisStore | PostgresStore
) -> tuple[TokenKey, str]:
    """The stored key the command's arguments name (:mod:`aiofinaccess.cli.addresses`)."""
    client = getattr(args, "client", None)
    return await resolve(store, args.provider, args.subject, client, config.store.label)


async def tokens_show(args: argparse.Namespace, config: Config, out: Output) -> int:
    """Details of one stored set, secrets as fingerprints."""
    _require_store(config)
    async with contextlib.aclosing(config.open_store()) as store:
        key, shown = await _address(args, config, store)
        stored = await store.get(key)
    if stored is None:
        raise CliError(f"no token set for {describe(key, shown)} in {config.store.label}")
    record = _record(key, stored.token_set)
    if args.json:
        out.json(record)
        return 0
    now = time.time()
    ts = stored.token_set
    record["expires_at"] = f"{record['expires_at'] or '-'} ({_when(ts.expires_at, now)})"
    if ts.refresh_token is not None:
        when = _refresh(ts, now)
        record["refresh_expires_at"] = f"{record['refresh_expires_at'] or '-'} ({when})"
    record["extra"] = ", ".join(record["extra"])
    out.fields(
        [(name, "-" if value in (None, "") else str(value)) for name, value in record.items()]
    )
    return 0


async def tokens_delete(args: argparse.Namespace, config: Config, out: Output) -> int:
    """Delete a set from the store without calling the provider."""
    _require_store(config)
    async with contextlib.aclosing(config.open_store()) as store:
        key, shown = await _address(args, config, store)
        deleted = await store.delete(key)
    if not deleted:
        raise CliError(f"no token set for {describe(key, shown)} in {config.store.label}")
    out.success(f"deleted the token set of {describe(key, shown)} (not revoked at the provider)")
    return 0


async def tokens_reseal(args: argparse.Namespace, config: Config, out: Output) -> int:
    """Rewrite every stored set sealed to its key (the migration to sealed records)."""
    if not config.store.exists():
        raise CliError(f"no token store at {config.store.label}")
    async with contextlib.aclosing(config.open_store()) as store:
        count = await reseal(store)
    out.success(f"resealed {count} token set(s) in {config.store.label}")
    return 0


async def tokens_manage(args: argparse.Namespace, config: Config, out: Output) -> int:
    """``refresh`` (renew now) or ``revoke`` (at the provider, then delete) one stored set."""
    settings = config.provider(args.provider, provider_flags(args))
    credentials = settings.credentials()
    settings.check()  # the settings first: they are what a user gets wrong
    _require_store(config)
    store = config.open_store()
    async with SessionManager(store=store, schedule=Schedule(enabled=False)) as manager:
        manager.register(await settings.provider(manager.http_session()), credentials)
        key, shown = await _address(args, config, store)
        label = describe(key, shown)
        if key.is_client and key.client != client_label(credentials):
            raise CliError(
                f"the token set of {label} belongs to another client than "
                f"{credentials.client_id} with this secret: give its --client-id and secret"
            )
        stored = await store.get(key)
        if stored is None:
            raise CliError(f"no token set for {label} in {config.store.label}")
        if args.action == "refresh":
            token_set = await manager.refresh(key.provider, key.subject)
            rotated = token_set.refresh_token != stored.token_set.refresh_token
            out.success(f"refreshed {label}: {describe_set(token_set, time.time())}")
            out.echo(f"  refresh token {'rotated' if rotated else 'kept'}")
        elif args.logout:
            if key.subject is None:
                raise CliError("--logout ends a user's session; give a subject")
            await manager.logout(key.provider, key.subject)
            out.success(f"logged out {label} at the provider and deleted the token set")
        else:
            await manager.revoke(key.provider, key.subject)
            out.success(f"revoked {label} at the provider and deleted the token set")
    return 0


# -- users ---------------------------------------------------------------------------------------


async def users_create(args: argparse.Namespace, config: Config, out: Output) -> int:
    """Create a finAPI user with the client's token; optionally log them in and store it."""
    settings: ProviderSettings = config.provider(
        args.name, {**provider_flags(args), "type": "finapi"}
    )
    password = None
    if args.password_stdin and getattr(args, "client_secret", None) == "-":
        raise CliError("--password-stdin and --client-secret - cannot both read stdin")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: stdin gave an empty password")
    user = NewUser(id=args.user_id, password=password, email=args.email, phone=args.phone)
    async with SessionManager(
        store=config.open_store(), schedule=Schedule(enabled=False)
    ) as manager:
        manager.register(await settings.provider(manager.http_session()), settings.credentials())
        if password is None and not args.show_password:  # after the settings, before a request
            raise CliError(
                "finAPI would generate the password and it would be lost: pass --show-password "
                "to print it, or choose it with --password-stdin"
            )
        created = await Users(manager, args.name).create(user)
        out.success(f"created finAPI user {created.id}")
        chosen = user.password or created.password
        if args.login:
            if chosen is None:
                raise CliError("finAPI returned no password to log in with")
            await manager.login_with_password(args.name, created.id, chosen)
            config.remember(settings)
            out.echo(f"  logged in; token set stored in {config.store.label}")
        if password is None and created.password is not None:
            out.echo(f"  password: {created.password.reveal()}")
    return 0
