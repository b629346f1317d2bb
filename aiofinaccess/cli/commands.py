"""The ``login``, ``tokens`` and ``users`` commands, which :mod:`aiofinaccess.cli.main` calls.

Output never carries a token, secret or code: token sets are shown by expiry, presence and a
SHA-256 fingerprint (``#1a2b3c4d``). Expected failures raise :class:`CliError` or an SDK error,
which the entry point prints as one line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hmac
import html
import sys
import time
import webbrowser
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ..api.users import NewUser, Users
from ..core.settings import Schedule
from ..core.tokens import Secret, TokenKey, TokenSet
from ..session.manager import SessionManager
from ..stores.migrate import reseal
from .config import FIELDS, CliError, Config, ProviderSettings
from .output import Output
from .secrets import client_secret_flag

if TYPE_CHECKING:
    from ..stores.redis import RedisStore
    from ..stores.sqlite import SQLiteStore

__all__ = [
    "login",
    "tokens_delete",
    "tokens_list",
    "tokens_manage",
    "tokens_reseal",
    "tokens_show",
    "users_create",
]

_PAGE: Final = "<!doctype html><title>aiofinaccess</title><h1>{title}</h1><p>{text}</p>"


def provider_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The provider settings given as flags (``None`` where a flag was not given)."""
    flags = {field: getattr(args, field, None) for field in FIELDS}
    flags["sandbox"] = getattr(args, "sandbox", None)
    flags["client_secret"] = client_secret_flag(
        flags["client_secret"], getattr(args, "client_secret_file", None)
    )
    return flags


# -- login ---------------------------------------------------------------------------------------


class _Loopback:
    """A one-shot web server on 127.0.0.1 that catches the redirect (RFC 8252, section 7.3)."""

    def __init__(self) -> None:
        self.state = ""
        self.query: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self.result: asyncio.Future[tuple[int, str, str]] = (
            asyncio.get_running_loop().create_future()
        )
        self.runner: web.AppRunner | None = None
        self.redirect_uri = ""

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_get("/callback", self.callback)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, "127.0.0.1", port).start()
        except OSError as exc:
            raise CliError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        bound = self.runner.addresses[0][1]
        self.redirect_uri = f"http://127.0.0.1:{bound}/callback"

    async def callback(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "")
        if self.query.done():  # a reload: never exchange twice
            status, title, text = await asyncio.shield(self.result)
            return _page(status, title, text)
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            return _page(400, "Not this login", "This is not the login the command started.")
        self.query.set_result(dict(request.query))
        return _page(*await asyncio.shield(self.result))

    def finish(self, status: int, title: str, text: str) -> None:
        if not self.result.done():
            self.result.set_result((status, title, text))

    async def close(self) -> None:
        self.finish(500, "Login stopped", "The command stopped before the login completed.")
        if self.runner is not None:
            await self.runner.cleanup()


def _page(status: int, title: str, text: str) -> web.Response:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text))
    return web.Response(status=status, text=body, content_type="text/html")


async def login(args: argparse.Namespace, config: Config, out: Output) -> int:
    """Run the authorization-code flow through a loopback redirect; store the token set."""
    settings = config.provider(args.name, provider_flags(args))
    subject: str = args.subject
    async with SessionManager(
        store=config.open_store(), schedule=Schedule(enabled=False)
    ) as manager:
        provider = await settings.provider(manager.http_session())
        manager.register(provider, settings.credentials())
        server = _Loopback()
        try:
            await server.start(args.port)
            request = manager.authorization_request(
                provider.name, server.redirect_uri, scopes=settings.scopes()
            )
            server.state = request.state
            out.echo("Open this URL in a browser to log in (waiting for the redirect):")
            out.echo(request.url)  # plain, never wrapped: it is copied or read by a script
            if not args.no_browser:
                await asyncio.to_thread(webbrowser.open, request.url)
            try:
                with out.status(f"Waiting for the login in the browser ({args.timeout:g} s)"):
                    async with asyncio.timeout(args.timeout):
                        query = await server.query
            except TimeoutError:
                raise CliError(f"no login within {args.timeout:g} s") from None
            try:
                token_set = await manager.complete_authorization(
                    provider.name, subject, query, request
                )
            except Exception as exc:
                server.finish(400, "Login failed", str(exc))
                raise
            server.finish(200, "Logged in", "You can close this window.")
        finally:
            await server.close()
    remembered = config.remember(settings)
    out.success(f"Logged in to {provider.name} as {subject}; stored in {config.store.label}")
    out.echo(f"  {_describe(token_set, time.time())}")
    if remembered:
        out.echo(f"  settings of {provider.name} remembered (no secret): aiofinaccess config show")
    return 0


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


def _describe(token_set: TokenSet, now: float) -> str:
    access = _when(token_set.expires_at, now)
    return f"access token {access}; refresh token {_refresh(token_set, now)}"


def _record(key: TokenKey, token_set: TokenSet) -> dict[str, Any]:
    """Everything about a stored set except its secrets (presence and fingerprints only)."""
    return {
        "provider": key.provider,
        "subject": key.subject,
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


def _key(provider: str, subject: str | None) -> TokenKey:
    return TokenKey(provider, subject or None)


def _label(key: TokenKey) -> str:
    return f"{key.provider} {key.subject}" if key.subject else f"{key.provider} (client)"


_LIST_BATCH = 500


async def _read_batch(
    store: SQLiteStore | RedisStore, keys: list[TokenKey]
) -> list[tuple[TokenKey, TokenSet]]:
    found = await store.get_many(keys) if keys else {}
    return [(key, stored.token_set) for key, stored in found.items()]


async def tokens_list(args: argparse.Namespace, config: Config, out: Output) -> int:
    """One line per stored token set, secrets redacted."""
    rows: list[tuple[TokenKey, TokenSet]] = []
    if config.store.exists():  # listing never creates a store
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
    rows.sort(key=lambda row: (row[0].provider, row[0].subject or ""))
    if args.json:
        out.json([_record(key, token_set) for key, token_set in rows])
        return 0
    if not rows:
        out.echo(f"no token sets in {config.store.label}")
        return 0
    now = time.time()
    out.table(
        ("PROVIDER", "SUBJECT", "ACCESS TOKEN", "REFRESH TOKEN", "SCOPE"),
        [
            (
                key.provider,
                key.subject or "(client)",
                _when(ts.expires_at, now),
                _refresh(ts, now),
                ts.scope or "",
            )
            for key, ts in rows
        ],
    )
    return 0


async def tokens_show(args: argparse.Namespace, config: Config, out: Output) -> int:
    """Details of one stored set, secrets as fingerprints."""
    key = _key(args.provider, args.subject)
    stored = None
    if config.store.exists():
        async with contextlib.aclosing(config.open_store()) as store:
            stored = await store.get(key)
    if stored is None:
        raise CliError(f"no token set for {_label(key)} in {config.store.label}")
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
    key = _key(args.provider, args.subject)
    deleted = False
    if config.store.exists():
        async with contextlib.aclosing(config.open_store()) as store:
            deleted = await store.delete(key)
    if not deleted:
        raise CliError(f"no token set for {_label(key)} in {config.store.label}")
    out.success(f"deleted the token set of {_label(key)} (not revoked at the provider)")
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
    key = _key(args.provider, args.subject)
    settings = config.provider(key.provider, provider_flags(args))
    store = config.open_store()
    async with SessionManager(store=store, schedule=Schedule(enabled=False)) as manager:
        manager.register(await settings.provider(manager.http_session()), settings.credentials())
        stored = await store.get(key)
        if stored is None:
            raise CliError(f"no token set for {_label(key)} in {config.store.label}")
        if args.action == "refresh":
            token_set = await manager.refresh(key.provider, key.subject)
            rotated = token_set.refresh_token != stored.token_set.refresh_token
            out.success(f"refreshed {_label(key)}: {_describe(token_set, time.time())}")
            out.echo(f"  refresh token {'rotated' if rotated else 'kept'}")
        elif args.logout:
            if key.subject is None:
                raise CliError("--logout ends a user's session; give a subject")
            await manager.logout(key.provider, key.subject)
            out.success(f"logged out {_label(key)} at the provider and deleted the token set")
        else:
            await manager.revoke(key.provider, key.subject)
            out.success(f"revoked {_label(key)} at the provider and deleted the token set")
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
            if args.show_password:
                out.echo(f"  password: {created.password.reveal()}")
            else:
                out.echo("  finAPI generated the password; --show-password prints it")
    return 0
