"""``aiofinaccess demo``: both providers' flows against the embedded sandbox, step by step.

finAPI: client token, create a user, the user's token (password grant), read the user, a
refresh after a short TTL, then a bank connection imported through Web Form 2.0 (the form
completed headlessly), its accounts and first transactions, a payment the user authorises in
a payment form and the bank books, and a money transfer whose answer is lost after commit,
found by reconciliation and sent once. Everifin: authorization URL,
headless login, code exchange, accounts and transactions, a payment the user authorises on its
page and the bank books, one whose answer is lost after commit (found by its externalId, sent
once), two refreshes showing the rotated refresh token, and the sandbox refusing the old one;
then a Paygate payment link, paid, whose webhooks arrive twice and out of order and change the
receiver's state once per event. Tokens are shown only as fingerprints;
the exit code is non-zero if any step fails.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aiohttp

from ..api.everifin.bankconnect import BankConnect
from ..api.finapi.data import FinApiData
from ..api.finapi.users import NewUser, Users
from ..api.finapi.webform import WebForms
from ..core.errors import AiofinaccessError, ReauthorizationRequired
from ..core.tokens import ClientCredentials, Secret, TokenSet
from ..oauth.presets import Everifin, FinApi
from ..sandbox import (
    LoginFailed,
    Sandbox,
    SandboxConfig,
    headless_login,
    run_sandbox,
)
from ..session.manager import SessionManager
from .demo_everifin_payments import everifin_payment_steps, paygate_steps
from .demo_payments import finish_form, payment_steps

__all__ = ["run"]

_T = TypeVar("_T")
_SHORT_TTL = 2.0
USER_ID = "demo-user"
USER_PASSWORD = "demo-password-123"
EVERIFIN_USER = "alice"


def _fp(secret: object) -> str:
    return f"#{secret.fingerprint()[:8]}" if isinstance(secret, Secret) else "-"


class _Steps:
    def __init__(self, echo: Callable[[str], object]) -> None:
        self.echo = echo
        self.failed = 0
        self.count = 0

    async def run(
        self, title: str, action: Callable[[], Awaitable[_T]], show: Callable[[_T], str]
    ) -> _T | None:
        self.count += 1
        try:
            result = await action()
        except (AiofinaccessError, aiohttp.ClientError, AssertionError, LoginFailed) as exc:
            self.failed += 1
            self.echo(f"  {self.count:>2}. {title:<48} FAILED: {type(exc).__name__}: {exc}")
            return None
        self.echo(f"  {self.count:>2}. {title:<48} ok  {show(result)}")
        return result


async def _finapi(manager: SessionManager, steps: _Steps, sandbox: Sandbox) -> None:
    steps.echo("finAPI Access (v2) on the sandbox")
    users = Users(manager)
    await steps.run(
        "client token (client_credentials)",
        lambda: manager.token_set("finapi"),
        lambda t: f"token {_fp(t.access_token)}, refresh token {_fp(t.refresh_token)}",
    )
    await steps.run(
        "create user (POST /api/v2/users, client token)",
        lambda: users.create(NewUser(id=USER_ID, password=USER_PASSWORD)),
        lambda user: f"id {user.id}",
    )
    await steps.run(
        "user token (password grant)",
        lambda: manager.login_with_password("finapi", USER_ID, USER_PASSWORD),
        lambda t: f"token {_fp(t.access_token)}, refresh token {_fp(t.refresh_token)}",
    )
    await steps.run(
        "read the user (GET /api/v2/users, user token)",
        lambda: users.get(USER_ID),
        lambda user: f"id {user.id}, password {'masked' if user.password is None else '?'}",
    )
    before = await manager.token_set("finapi", USER_ID)

    async def after_expiry() -> TokenSet:
        await asyncio.sleep(_SHORT_TTL + 0.2)
        await manager.access_token("finapi", USER_ID)
        after = await manager.token_set("finapi", USER_ID)
        if after.access_token == before.access_token:
            raise AssertionError("token was not renewed")
        return after

    await steps.run(
        f"refresh after the {_SHORT_TTL:.0f} s TTL (refresh_token grant)",
        after_expiry,
        lambda t: f"token {_fp(before.access_token)} -> {_fp(t.access_token)}",
    )
    await _finapi_data(manager, steps, sandbox)


async def _finapi_data(manager: SessionManager, steps: _Steps, sandbox: Sandbox) -> None:
    forms = WebForms(manager)
    form = await steps.run(
        "Web Form 2.0 import (POST /api/webForms/...)",
        lambda: forms.import_bank_connection(USER_ID),
        lambda created: f"form {created.id[:8]}..., status {created.status}",
    )
    if form is None:
        return

    done = await steps.run(
        "the end user completes the form (headless)",
        lambda: finish_form(forms, USER_ID, form),
        lambda f: f"{f.status}, bank connection {f.payload.bank_connection_id}",
    )
    if done is None or done.payload.bank_connection_id is None:
        return
    data = FinApiData(manager)
    accounts = await steps.run(
        "accounts (GET /api/v2/accounts)",
        lambda: data.accounts(USER_ID),
        lambda found: ", ".join(
            f"{a.account_type} {a.balance} {a.account_currency}" for a in found
        ),
    )
    await steps.run(
        "transactions (first 5, paged)",
        lambda: _first(data.transactions(USER_ID, per_page=20)),
        lambda found: ", ".join(f"{t.amount} {t.currency}" for t in found[:3]) + ", ...",
    )
    if accounts:
        await payment_steps(manager, steps, sandbox, USER_ID, accounts[0].id)


async def _first(items: AsyncIterator[_T], count: int = 5) -> list[_T]:
    """The first ``count`` items of a paged iteration (the rest is never fetched)."""
    found: list[_T] = []
    async for item in items:
        found.append(item)
        if len(found) == count:
            break
    return found


async def _everifin(manager: SessionManager, steps: _Steps, sandbox: Sandbox) -> None:
    steps.echo("Everifin BankConnect (Keycloak realm everifin_app) on the sandbox")
    redirect_uri = "http://127.0.0.1/callback"
    request = manager.authorization_request("everifin", redirect_uri)
    steps.echo(f"   authorization URL: {request.yarl_url.with_query(None)} (state + PKCE S256)")
    async with aiohttp.ClientSession() as browser:
        callback = await steps.run(
            "headless login on the sandbox login page",
            lambda: headless_login(browser, request.url, EVERIFIN_USER, "alice-password"),
            lambda url: f"callback with {', '.join(sorted(url.query))}",
        )
    if callback is None:
        return
    first = await steps.run(
        "code exchange (authorization_code)",
        lambda: manager.complete_authorization("everifin", EVERIFIN_USER, str(callback), request),
        lambda t: f"token {_fp(t.access_token)}, refresh token {_fp(t.refresh_token)}",
    )
    bank = BankConnect(manager)
    accounts = await steps.run(
        "accounts (GET /v1/accounts)",
        lambda: bank.accounts(EVERIFIN_USER),
        lambda found: f"{len(found)} accounts",
    )
    if accounts:
        await steps.run(
            "transactions (first 5, paged)",
            lambda: _first(bank.transactions(EVERIFIN_USER, accounts[0].id, per_page=50)),
            lambda found: ", ".join(f"{tx.amount} {tx.currency}" for tx in found[:3]) + ", ...",
        )
    if first is not None:
        await everifin_payment_steps(manager, steps, sandbox, EVERIFIN_USER)
    if first is None:
        return
    second = await steps.run(
        "refresh #1 (rotates the refresh token)",
        lambda: manager.refresh("everifin", EVERIFIN_USER),
        lambda t: f"refresh token {_fp(first.refresh_token)} -> {_fp(t.refresh_token)}",
    )
    third = await steps.run(
        "refresh #2 (rotates it again)",
        lambda: manager.refresh("everifin", EVERIFIN_USER),
        lambda t: f"refresh token {_fp(second and second.refresh_token)} -> {_fp(t.refresh_token)}",
    )
    old = first.refresh_token
    if old is None:
        raise AssertionError("the code exchange returned no refresh token")

    async def replay_old() -> ReauthorizationRequired:
        try:
            await manager.oauth("everifin").refresh(old)
        except ReauthorizationRequired as exc:
            return exc
        raise AssertionError("the sandbox accepted a rotated refresh token")

    await steps.run(
        "replaying the old refresh token is refused",
        replay_old,
        lambda exc: f"{exc.reason} ({exc.cause.body.message if exc.cause else ''})",
    )

    async def newest_is_dead_too() -> ReauthorizationRequired:
        try:
            await manager.refresh("everifin", EVERIFIN_USER)
        except ReauthorizationRequired as exc:
            return exc
        raise AssertionError("the session survived a refresh-token replay")

    if third is not None:
        await steps.run(
            "... and the replay killed the session",
            newest_is_dead_too,
            lambda exc: f"{exc.reason} ({exc.cause.body.message if exc.cause else ''})",
        )


async def run(echo: Callable[[str], object] = print) -> int:
    """Run the demo; return the process exit code."""
    config = SandboxConfig(finapi_user_token_ttl=_SHORT_TTL)
    steps = _Steps(echo)
    async with run_sandbox(config) as sandbox:
        echo(f"sandbox running at {sandbox.base_url}")
        async with SessionManager() as manager:
            manager.register(
                FinApi.at(sandbox.base_url),
                ClientCredentials(config.finapi_client_id, config.finapi_client_secret),
            )
            manager.register(
                Everifin.at(
                    sandbox.idp_url, sandbox.api_url, realm=config.realm, scopes=("ais", "pis")
                ),
                ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
            )
            manager.register(
                Everifin.paygate_at(
                    sandbox.idp_url, sandbox.paygate_url, realm=config.paygate_realm
                ),
                ClientCredentials(config.paygate_client_id, config.paygate_client_secret),
            )
            await _finapi(manager, steps, sandbox)
            await _everifin(manager, steps, sandbox)
            steps.echo("Everifin Paygate (realm everifin_paygate, client_credentials)")
            await paygate_steps(manager, steps, sandbox)
            stats = sandbox.stats()
            echo("token requests seen by the sandbox:")
            for grant, count in sorted(stats["token_requests"].items()):
                echo(f"   {grant:<34} {count}")
            echo(f"   refresh-token reuse violations     {stats['reuse_violations']}")
            echo(f"   sessions killed                    {stats['sessions_killed']}")
            echo(f"token requests sent by the manager: {manager.stats.token_requests}")
    verdict = "all steps passed" if steps.failed == 0 else f"{steps.failed} step(s) FAILED"
    echo(f"demo: {steps.count} steps, {verdict}")
    return 0 if steps.failed == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(asyncio.run(run()))
