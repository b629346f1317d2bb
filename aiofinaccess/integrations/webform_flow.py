"""Connect a user's bank through finAPI: the finAPI user, the Web Form, its outcome, once.

>>> flow = WebFormFlow(manager, "finapi", success_url="/accounts")  # doctest: +SKIP
>>> WebConnect(flow, user_id=user_id).setup(app)  # doctest: +SKIP

finAPI has no authorization-code flow: an app creates a finAPI user for each of its users,
logs them in with the password grant, and sends the browser to a Web Form 2.0 import. Here
:meth:`WebFormFlow.begin` does all of it: on a user's first connect it creates the finAPI user
under the app's user id with a generated password, kept sealed in the token store (through its
codec: a :class:`~aiofinaccess.stores.codec.FernetCodec` encrypts it) and never shown or
logged; later connects log in with that password when the user has no live tokens. The form
sends the browser back to the callback with the flow's ``state``; :meth:`~WebFormFlow.finish`
then reads the form's status from the Web Form API (the browser's return says nothing by
itself), once, bound to the user, like :class:`~aiofinaccess.integrations.web.ConnectFlow`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from yarl import URL

from ..api.finapi.users import NewUser, Users
from ..api.finapi.webform import BankConnectionImport, WebForms, WebFormStatus
from ..core._json import parse_json
from ..core.errors import (
    ApiError,
    AuthorizationDenied,
    AuthorizationFlowError,
    EntityExistsError,
    ReauthorizationRequired,
    StoreError,
    ValidationError,
)
from ..core.tokens import Secret, TokenKey
from ..stores import PendingAuthorizations, TokenStore
from .web import ConnectFlow

if TYPE_CHECKING:
    from ..oauth.providers import Provider
    from ..session.manager import SessionManager

__all__ = ["WebFormFlow", "kept_passwords"]

#: A stored finAPI password lives as long as the user may come back (renewed at each login).
PASSWORD_TTL: Final = 10 * 365 * 86400.0
_CREATE_LEASE: Final = 30.0
_REFUSED: Final = 400  # finAPI's answer to a password grant with bad credentials


def _password_key(provider: str, user: str) -> str:
    # The key names no user: it is a hash, like the flow's own records.
    return f"web:{provider}:password:{hashlib.sha256(user.encode()).hexdigest()}"


async def _kept(store: PendingAuthorizations, provider: str, user: str) -> Secret | None:
    raw = await store.get_pending(_password_key(provider, user))
    if raw is None:
        return None
    try:
        record = parse_json(raw)
    except ValueError:
        record = None
    if not isinstance(record, Mapping) or not isinstance(record.get("password"), str):
        raise StoreError("a stored finAPI password record is unreadable")
    return Secret(record["password"])


def kept_passwords(
    store: PendingAuthorizations, provider: str = "finapi"
) -> Callable[[str], Awaitable[Secret | None]]:
    """A ``password_lookup`` for ``manager.register``: the passwords :class:`WebFormFlow`
    keeps in ``store``. With it, the manager logs a finAPI user in again by itself when their
    refresh token is gone, instead of sending them back through the Web Form."""

    async def lookup(user: str) -> Secret | None:
        return await _kept(store, provider, user)

    return lookup


class WebFormFlow(ConnectFlow):
    """The finAPI connect flow: ``begin`` sends the user to a Web Form import, ``finish``
    takes the form's outcome exactly once. Used wherever a :class:`ConnectFlow` is.

    Args:
        manager: Holds the finAPI client's and users' tokens; its store keeps the passwords.
        provider: The registered finAPI provider (name or :class:`Provider`).
        store: Keeps pending flows and the sealed passwords; by default the manager's store.
        success_url: Where ``next_url`` points when the app names no local path.
        details: What to import (bank, account types...); the user chooses everything when
            ``None``.
        pending_ttl: Seconds a user has to finish the form (finAPI's forms live 20 minutes).
        outcome_ttl: Seconds a reload of the return still ends like the first request.
        wait_timeout: Seconds a duplicate return waits for the first one's reading.
        form_wait: Seconds the return waits for a form that is not final yet.
        poll_interval: Seconds between status reads while waiting (keep it >= 1 at finAPI).

    Raises:
        ConfigurationError: The provider has no ``web_form_url``, the store cannot keep
            pending records, or a TTL is bad.
    """

    step = "web form check"

    def __init__(
        self,
        manager: SessionManager,
        provider: Provider | str = "finapi",
        *,
        store: PendingAuthorizations | None = None,
        success_url: str = "/",
        details: BankConnectionImport | None = None,
        pending_ttl: float = 1200.0,
        outcome_ttl: float = 600.0,
        wait_timeout: float = 60.0,
        form_wait: float = 10.0,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(
            manager,
            provider,
            store=store,
            success_url=success_url,
            pending_ttl=pending_ttl,
            outcome_ttl=outcome_ttl,
            wait_timeout=wait_timeout,
        )
        self._forms = WebForms(manager, self.provider)
        self._users = Users(manager, self.provider)
        self._details = details
        self._form_wait, self._poll_interval = form_wait, poll_interval

    async def begin(self, user: str, redirect_uri: str, *, next_url: str | None = None) -> str:
        """Make sure ``user`` has a finAPI user and tokens, create an import form, and return
        the form's URL, which sends the browser back to ``redirect_uri`` when done.

        Raises:
            AuthorizationFlowError: The user cannot have a finAPI user here: the id breaks
                finAPI's rules, or a finAPI user of that id exists without a password kept here.
            ApiError: finAPI refused a call (the web integrations answer problem+json).
        """
        await self._log_in(user)
        form = await self._forms.import_bank_connection(user, self._details)
        state = secrets.token_urlsafe(32)
        await self._remember(state, user, next_url, {"web_form_id": form.id})
        back = str(URL(redirect_uri).update_query(state=state))
        # The form's own parameters: where finAPI sends the browser after success and failure.
        return str(URL(form.url).update_query(redirectUrl=back, errorRedirectUrl=back))

    async def _complete(self, subject: str, request: dict[str, Any], query: dict[str, str]) -> None:
        form_id = request.get("web_form_id")
        if not isinstance(form_id, str):
            raise StoreError("a pending authorization record is unreadable")
        form = await self._forms.get(subject, form_id)
        if not form.finished:  # back before finAPI finalised it: wait a little
            try:
                form = await self._forms.wait_until_finished(
                    subject, form_id, poll_interval=self._poll_interval, timeout=self._form_wait
                )
            except TimeoutError:
                raise AuthorizationFlowError(
                    f"the web form is not finished (status {form.status})"
                ) from None
        if form.status == WebFormStatus.COMPLETED:
            return
        if form.status == WebFormStatus.ABORTED:
            raise AuthorizationDenied("access_denied", "the web form was aborted")
        code = form.payload.error_code
        raise AuthorizationFlowError(
            f"the web form ended {form.status}" + (f" ({code})" if code else "")
        )

    # -- the finAPI user -----------------------------------------------------------------------

    async def _log_in(self, user: str) -> None:
        """Give ``user`` live finAPI tokens: theirs if stored, else log in (creating them)."""
        key = self._manager.key(self.provider, user)
        if await self._manager.store.get(key) is not None:
            try:
                await self._manager.access_token(self.provider, user)
                return
            except ReauthorizationRequired:  # a dead grant: log in again below
                pass
        tokens: TokenStore = self._manager.store
        # One creator per user across workers (two tabs, two workers): the rest wait here.
        async with tokens.lease(TokenKey(f"{self.provider}-user", user), ttl=_CREATE_LEASE):
            password = await self._password(user)
            if password is None:
                password = await self._create(user)
            try:
                await self._manager.login_with_password(self.provider, user, password)
            except ApiError as exc:
                if exc.status != _REFUSED:
                    raise
                # Kept, but finAPI does not know the user (a crash before creating them, a
                # deleted user, a reset sandbox): create them with it, once.
                await self._create(user, password)
                await self._manager.login_with_password(self.provider, user, password)
            await self._keep(user, password)  # renews the record's lifetime

    async def _create(self, user: str, password: Secret | None = None) -> Secret:
        if password is None:
            password = Secret(secrets.token_urlsafe(24))
        try:
            new = NewUser(id=user, password=password)
        except ValidationError as exc:
            raise AuthorizationFlowError(f"the user id cannot be a finAPI user id: {exc}") from None
        await self._keep(user, password)  # before finAPI has it: a crash must not lose it
        try:
            await self._users.create(new)
        except EntityExistsError:
            await self._store.take_pending(_password_key(self.provider, user))  # not its password
            raise AuthorizationFlowError(
                f"finAPI user {user!r} exists, but this app keeps no password for it"
            ) from None
        return password

    async def _password(self, user: str) -> Secret | None:
        return await _kept(self._store, self.provider, user)

    async def _keep(self, user: str, password: Secret) -> None:
        record = json.dumps({"password": password.reveal()}).encode()
        await self._store.put_pending(_password_key(self.provider, user), record, ttl=PASSWORD_TTL)
