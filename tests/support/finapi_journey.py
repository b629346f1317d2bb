"""The finAPI journey up to imported data, for the data and contract tests: a user, their
token, a Web Form import completed on the sandbox's page."""

from __future__ import annotations

from typing import Any, Final

import aiohttp

from aiofinaccess import EndUser, SessionManager
from aiofinaccess.finapi import (
    BackgroundUpdate,
    ConnectionUpdates,
    NewUser,
    UpdateRoutes,
    Users,
    WebForm,
    WebFormInfo,
    WebFormRequired,
    WebForms,
)
from aiofinaccess.sandbox import headless_web_form

PASSWORD = "finapi-data-password"


async def press(form: WebForm | WebFormInfo | WebFormRequired, action: str = "complete") -> None:
    """Open the form's page and press a button, as the end user's browser would."""
    async with aiohttp.ClientSession() as browser:
        await headless_web_form(browser, form.url, action)


async def import_connection(manager: SessionManager, user: str, *, create: bool = True) -> int:
    """Create and log in ``user`` (unless told not to), import a bank connection, return its id."""
    if create:
        await Users(manager).create_and_login(NewUser(id=user, password=PASSWORD))
    forms = WebForms(manager)
    form = await forms.import_bank_connection(user)
    await press(form)
    done = await forms.get(user, form.id)
    assert done.status == "COMPLETED", done
    assert done.payload.bank_connection_id is not None
    return done.payload.bank_connection_id


#: A user at the app: their browser's address and agent, forwarded as finAPI's PSU headers.
PRESENT: Final = EndUser(ip_address="203.0.113.5", user_agent="Mozilla/5.0", device_os="iOS 18")


async def update_form(
    manager: SessionManager, user: str, connection_id: int, **fields: Any
) -> WebFormRequired:
    """An update through the deprecated update form (``UpdateRoutes(via="web_form")``), the
    user present (it goes through them: it takes nothing of the unattended budget)."""
    updates = ConnectionUpdates(manager, routes=UpdateRoutes(via="web_form"))
    outcome = await updates.update(
        user, BackgroundUpdate(connection_id, **fields), end_user=PRESENT
    )
    assert isinstance(outcome, WebFormRequired), outcome
    return outcome
