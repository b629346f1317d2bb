"""Run a real OAuth 2.0 / OIDC server (panva's ``oidc-provider`` on Node) for end-to-end tests.

The server lives in ``tests/oidc_provider`` (``server.mjs``, pinned by ``package-lock.json``).
It shares no code with the SDK, which is the point: it checks our reading of the specs against
an independent, certified implementation rather than against our own fakes.

What it does, for the SDK's purposes:

* Authorization code grant with PKCE ``S256`` *required*; the client authenticates at the token
  endpoint with ``client_secret_post`` (``sdk-client``) or ``client_secret_basic``
  (``sdk-client-basic``); both share one secret.
* A refresh token on every code exchange for scope ``openid``; no ``offline_access`` or
  ``prompt=consent`` is needed.
* Refresh tokens rotate on every use. Presenting a rotated one fails with ``invalid_grant`` and
  revokes the whole grant, so the newest refresh token and its access tokens die with it.
* Revocation, introspection and RP-initiated logout endpoints, all in the discovery document.

Usage::

    if ensure_installed() is None:
        pytest.skip("node and npm are needed")
    async with running_oidc_provider(access_ttl=60) as oidc:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for a bare IP host
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            callback_url = await headless_login(session, authorization_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp

PROVIDER_DIR: Final = Path(__file__).resolve().parent.parent / "oidc_provider"
CLIENT_ID: Final = "sdk-client"
BASIC_CLIENT_ID: Final = "sdk-client-basic"
# A fixed secret of a throwaway test server; it is fine in logs.
CLIENT_SECRET: Final = "sdk-client-secret-0123456789"
REDIRECT_URI: Final = "http://127.0.0.1/callback"
POST_LOGOUT_REDIRECT_URI: Final = "http://127.0.0.1/logged-out"
SCOPES: Final = ("openid",)

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class OidcProvider:
    """A running oidc-provider and the client registered in it."""

    issuer: str
    access_ttl: int
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    basic_client_id: str = BASIC_CLIENT_ID
    redirect_uri: str = REDIRECT_URI
    post_logout_redirect_uri: str = POST_LOGOUT_REDIRECT_URI
    scopes: tuple[str, ...] = SCOPES
    _log: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def server_log(self) -> str:
        """What the server printed so far besides its READY line (warnings, server errors)."""
        return "\n".join(self._log)


def ensure_installed() -> Path | None:
    """Install the server's npm packages if needed; ``None`` when node or npm is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    lock = PROVIDER_DIR / "package-lock.json"
    # npm writes this after every install; older than the lock means the lock has moved on.
    installed = PROVIDER_DIR / "node_modules" / ".package-lock.json"
    if lock.exists():
        stale = not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime
        command = [npm, "ci", "--no-audit", "--no-fund"]
    else:
        stale = not installed.exists()
        command = [npm, "install", "--no-audit", "--no-fund"]
    if stale:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command,
            cwd=PROVIDER_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            msg = (
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
            raise RuntimeError(msg)
    return PROVIDER_DIR


@contextlib.asynccontextmanager
async def running_oidc_provider(
    access_ttl: int = 300, *, startup_timeout: float = 30.0
) -> AsyncIterator[OidcProvider]:
    """Start ``node server.mjs`` on a free loopback port; stop it on exit."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError(
            f"oidc-provider is not installed in {PROVIDER_DIR}; call ensure_installed()"
        )
    env = {**os.environ, "ACCESS_TTL": str(access_ttl)}
    # The port is free when picked but could be taken before node binds it: try again then.
    for attempt in range(3):
        log: list[str] = []
        process = await asyncio.create_subprocess_exec(
            node,
            "server.mjs",
            str(_free_port()),
            cwd=PROVIDER_DIR,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        readers = [asyncio.create_task(_collect(process.stderr, log))]
        try:
            issuer = await _wait_ready(process, process.stdout, log, startup_timeout)
            if issuer is None:
                if attempt < 2 and any("EADDRINUSE" in line for line in log):
                    continue
                await asyncio.gather(*readers)
                msg = f"oidc-provider exited with {process.returncode} before READY:\n"
                raise RuntimeError(msg + "\n".join(log))
            # Keep draining stdout, so nothing the server prints can block it on a full pipe.
            readers.append(asyncio.create_task(_collect(process.stdout, log)))
            yield OidcProvider(issuer=issuer, access_ttl=access_ttl, _log=log)
            return
        finally:
            await _stop(process)
            await asyncio.gather(*readers)
    raise AssertionError("unreachable")  # pragma: no cover


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _collect(stream: asyncio.StreamReader, log: list[str]) -> None:
    async for line in stream:
        log.append(line.decode(errors="replace").rstrip())


async def _wait_ready(
    process: asyncio.subprocess.Process,
    stdout: asyncio.StreamReader,
    log: list[str],
    timeout: float,
) -> str | None:
    """The issuer from the READY line, or ``None`` if the server exited first."""
    try:
        async with asyncio.timeout(timeout):
            async for raw in stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith("READY "):
                    return line.removeprefix("READY ")
                log.append(line)
            await process.wait()
            return None
    except TimeoutError:
        msg = f"oidc-provider printed no READY line within {timeout} s:\n" + "\n".join(log)
        raise RuntimeError(msg) from None


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


class LoginError(RuntimeError):
    """The headless login did not reach the client's redirect URI."""


async def headless_login(
    session: aiohttp.ClientSession,
    authorization_url: str,
    username: str = "alice",
    password: str = "anything",
    *,
    max_steps: int = 12,
) -> str:
    """Drive the provider's login and consent forms; return the redirect to ``redirect_uri``.

    The returned URL carries ``code``, ``state`` and ``iss`` on success, or ``error`` and
    ``error_description`` when the provider refuses the request; it is never requested, since
    nothing listens there. ``session`` must keep cookies for an IP host:
    ``aiohttp.CookieJar(unsafe=True)``.
    """
    redirect_uri = parse_qs(urlsplit(authorization_url).query).get("redirect_uri", [""])[0]
    if not redirect_uri:
        raise LoginError("the authorization URL has no redirect_uri")
    target = _endpoint(redirect_uri)
    method, url, data = "GET", authorization_url, None
    for _ in range(max_steps):
        async with session.request(method, url, data=data, allow_redirects=False) as response:
            if response.status in _REDIRECTS:
                location = urljoin(str(response.url), response.headers["Location"])
                if _endpoint(location) == target:
                    return location
                if response.status in (301, 302, 303):
                    method, data = "GET", None
                url = location
                continue
            body = await response.text()
            if response.status != 200:
                hint = ""
                if "cookie" in body.lower():
                    hint = " (does the session use aiohttp.CookieJar(unsafe=True)?)"
                msg = f"HTTP {response.status} from {method} {url}{hint}: {_text_of(body)[:500]}"
                raise LoginError(msg)
        form = _first_post_form(body)
        if form is None:
            raise LoginError(f"no form to submit at {url}: {_text_of(body)[:500]}")
        method, url = "POST", urljoin(url, form.action or url)
        data = form.filled(username, password)
    raise LoginError(f"no redirect to {redirect_uri} after {max_steps} steps")


def _endpoint(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path


@dataclass
class _Form:
    action: str
    method: str
    inputs: list[tuple[str, str, str]] = field(default_factory=list)  # name, type, value

    def filled(self, username: str, password: str) -> dict[str, str]:
        data: dict[str, str] = {}
        for name, kind, value in self.inputs:
            if kind == "password":
                data[name] = password
            elif kind in ("text", "email") or name in ("login", "username"):
                data[name] = username
            elif kind not in ("checkbox", "radio") or value:
                data[name] = value
        return data


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.text: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "form":
            method = attributes.get("method", "get").lower()
            self.forms.append(_Form(attributes.get("action", ""), method))
            self._in_form = True
        elif tag in ("input", "button") and self._in_form and attributes.get("name"):
            kind = attributes.get("type", "text" if tag == "input" else "submit").lower()
            self.forms[-1].inputs.append((attributes["name"], kind, attributes.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


def _first_post_form(html: str) -> _Form | None:
    parser = _FormParser()
    parser.feed(html)
    return next((form for form in parser.forms if form.method == "post"), None)


def _text_of(html: str) -> str:
    parser = _FormParser()
    parser.feed(html)
    return " ".join(parser.text)
