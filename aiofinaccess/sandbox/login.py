"""Headless login on the sandbox's login page (and its Web Form page): what a browser would
do, with aiohttp alone.

GET the authorization URL, read the form, POST the credentials, and return the callback URL
the sandbox redirects to (without requesting it: the app behind it may not be running).
"""

from __future__ import annotations

from html.parser import HTMLParser

import aiohttp
from yarl import URL

__all__ = ["LoginFailed", "headless_login", "headless_payment", "headless_web_form"]


class LoginFailed(Exception):
    """The login page refused the credentials or did not redirect."""


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action = named.get("action")
        elif tag == "input" and named.get("type") == "hidden" and "name" in named:
            self.fields[named["name"]] = named.get("value", "")
        elif named.get("id") == "input-error":
            self.error = True


async def headless_login(
    session: aiohttp.ClientSession,
    authorization_url: str | URL,
    username: str,
    password: str,
    *,
    cancel: bool = False,
) -> URL:
    """Log in (or cancel) on the sandbox login page; return the callback URL it redirects to.

    Raises:
        LoginFailed: Wrong credentials, or the authorization request itself was refused.
    """
    async with session.get(authorization_url, allow_redirects=False) as response:
        if response.status in (301, 302, 303):
            return URL(response.headers["Location"])
        page = await response.text()
        if response.status != 200:
            raise LoginFailed(f"authorization request refused: HTTP {response.status}")
        page_url = response.url
    reader = _FormReader()
    reader.feed(page)
    if reader.action is None:
        raise LoginFailed("no login form on the page")
    form = dict(reader.fields)
    if cancel:
        form["cancel"] = "cancel"
    else:
        form.update(username=username, password=password, login="login")
    async with session.post(
        page_url.join(URL(reader.action)), data=form, allow_redirects=False
    ) as response:
        if response.status in (301, 302, 303):
            return URL(response.headers["Location"])
        retry = _FormReader()
        retry.feed(await response.text())
        raise LoginFailed(
            "invalid username or password" if retry.error else f"HTTP {response.status}"
        )


async def headless_web_form(
    session: aiohttp.ClientSession, url: str | URL, action: str = "complete"
) -> None:
    """Open a sandbox Web Form page and press ``complete`` (or ``abort``), as a browser would.

    Raises:
        LoginFailed: The page is gone (used, expired, unknown) or refused the action.
    """
    async with session.get(url) as response:
        if response.status != 200:
            raise LoginFailed(f"web form page answered HTTP {response.status}")
    async with session.post(url, data={"action": action}) as response:
        if response.status != 200:
            raise LoginFailed(f"web form refused {action!r}: HTTP {response.status}")


async def headless_payment(
    session: aiohttp.ClientSession, link: str | URL, action: str = "authorise"
) -> None:
    """Open an Everifin payment's authorization page (its ``link``) and press ``authorise``
    (or ``cancel``), as the payer would.

    Raises:
        LoginFailed: No payment to authorise there, or the page refused the action.
    """
    async with session.get(link) as response:
        if response.status != 200:
            raise LoginFailed(f"payment page answered HTTP {response.status}")
    async with session.post(link, data={"action": action}, allow_redirects=False) as response:
        if response.status not in (200, 302):
            raise LoginFailed(f"payment page refused {action!r}: HTTP {response.status}")
