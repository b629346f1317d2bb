"""``aiofinaccess login``: the authorization-code flow (PKCE) through a loopback redirect.

A one-shot web server on ``127.0.0.1`` (a free port unless ``--port``) catches the redirect
(RFC 8252); the token set is stored and the provider's non-secret settings remembered. Output
never carries a token, secret or code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import html
import signal
import time
import webbrowser
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, TypeVar

from aiohttp import web

from ..core.settings import Schedule
from ..session.manager import SessionManager
from .commands import describe_set, provider_flags
from .config import CliError, Config
from .output import Output

__all__ = ["login"]

_T = TypeVar("_T")
_PAGE: Final = "<!doctype html><title>aiofinaccess</title><h1>{title}</h1><p>{text}</p>"


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


@contextlib.contextmanager
def _interruptible() -> Iterator[Callable[[Awaitable[_T]], Awaitable[_T]]]:
    """SIGINT ends the wait as Ctrl-C does (KeyboardInterrupt), even where it was inherited
    ignored (``trap '' INT``, a background start): asyncio.run() leaves an ignored SIGINT
    ignored, so the login would wait out its timeout and report that instead. The signal's
    previous handling is restored after the wait. Off the main thread (``main()`` called from
    a worker thread) signals cannot be taken: the wait is left to the timeout."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    previous = signal.getsignal(signal.SIGINT)

    def interrupt() -> None:
        if not stop.done():
            stop.set_result(None)

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
        taken = True
    except (ValueError, RuntimeError):  # not the main thread
        taken = False

    async def wait(awaitable: Awaitable[_T]) -> _T:
        waited = asyncio.ensure_future(awaitable)
        await asyncio.wait((waited, stop), return_when=asyncio.FIRST_COMPLETED)
        if not waited.done():
            waited.cancel()
            raise KeyboardInterrupt
        return waited.result()

    try:
        yield wait
    finally:
        if taken:
            loop.remove_signal_handler(signal.SIGINT)
            signal.signal(signal.SIGINT, previous)


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
            with _interruptible() as interrupted:  # before the URL: a reader may stop us then
                out.echo("Open this URL in a browser to log in (waiting for the redirect):")
                out.echo(request.url)  # plain, never wrapped: it is copied or read by a script
                if not args.no_browser:
                    await interrupted(asyncio.to_thread(webbrowser.open, request.url))
                try:
                    with out.status(f"Waiting for the login in the browser ({args.timeout:g} s)"):
                        async with asyncio.timeout(args.timeout):
                            query = await interrupted(server.query)
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
    out.echo(f"  {describe_set(token_set, time.time())}")
    if remembered:
        out.echo(f"  settings of {provider.name} remembered (no secret): aiofinaccess config show")
    return 0
