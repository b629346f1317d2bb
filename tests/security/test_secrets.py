"""Secret hygiene: every flow runs with DEBUG logging on, and no secret shows anywhere.

"Anywhere" is every log record (ours and aiohttp's, message, args and extras), the repr of
every object the flows return, and the message, repr and args of every exception raised,
with their chained causes.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from aiofinaccess import (
    AiofinaccessError,
    BearerAuth,
    ClientCredentials,
    FinApi,
    Oidc,
    ReauthorizationRequired,
    Schedule,
    SessionManager,
)
from aiofinaccess.core.convert import display_converter
from aiofinaccess.errors import (
    AuthorizationDenied,
    InvalidClientError,
    OAuthError,
    StateMismatchError,
)
from aiofinaccess.oauth import ClientAuthMethod, OAuthClient, discover
from tests.support.fake_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    USERS,
    FakeProvider,
    running_provider,
)
from tests.support.fakes import FakeClock, RecordingHandler


@pytest.fixture
def recorder() -> Iterator[RecordingHandler]:
    handler = RecordingHandler()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def _describe(error: BaseException) -> list[str]:
    texts = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen), repr(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return texts


async def _run_every_flow(
    provider: FakeProvider, clock: FakeClock
) -> tuple[list[object], list[BaseException], set[str]]:
    """Drive each grant, revocation, logout, the middleware and the error paths."""
    shown: list[object] = []
    errors: list[BaseException] = []
    client_side_secrets: set[str] = set()
    async with aiohttp.ClientSession() as plain:
        keycloak = await discover(
            plain, provider.base_url + REALM, name="kc", api_url=provider.base_url
        )
    finapi = FinApi.at(provider.base_url, name="fin")
    basic = Oidc.keycloak(
        provider.base_url, "test", name="basic", client_auth=ClientAuthMethod.CLIENT_SECRET_BASIC
    )
    credentials = ClientCredentials(CLIENT_ID, CLIENT_SECRET)
    async with SessionManager(clock=clock, schedule=Schedule(enabled=False)) as manager:
        for registered in (keycloak, finapi, basic):
            manager.register(registered, credentials)
        shown += [keycloak, finapi, credentials, manager]

        # Authorization code with PKCE and state, then refresh with rotation.
        request = manager.authorization_request("kc", "https://app.example.com/cb")
        shown.append(request)
        assert request.code_verifier is not None
        client_side_secrets.add(request.code_verifier.reveal())
        code = provider.issue_code("alice")
        tokens = await manager.complete_authorization(
            "kc", "alice", {"code": code, "state": request.state}, request
        )
        shown += [tokens, display_converter().unstructure(tokens)]
        old_refresh = tokens.refresh_token
        clock.advance(400)
        shown.append(await manager.token_set("kc", "alice"))

        # Middleware, including a 401 and its refresh.
        async with aiohttp.ClientSession(
            middlewares=(BearerAuth(manager, "kc", "alice"),)
        ) as session:
            provider.revoke_all_access()
            async with session.get(provider.base_url + "/api/resource") as response:
                assert response.status == 200

        # Replaying a rotated refresh token is refused and reported as re-authorization.
        assert old_refresh is not None
        try:
            await manager.oauth("kc").refresh(old_refresh)
        except ReauthorizationRequired as exc:
            errors.append(exc)

        # Client credentials, password grant, Basic client auth.
        shown.append(await manager.token_set("fin"))
        shown.append(await manager.login_with_password("fin", "alice", USERS["alice"]))
        shown.append(await manager.login_with_password("basic", "alice", USERS["alice"]))

        # Revocation (finAPI style, client bearer) and logout.
        await manager.revoke("fin", "alice")
        await manager.logout("kc", "alice")
        try:
            await manager.access_token("kc", "alice")
        except ReauthorizationRequired as exc:
            errors.append(exc)

        # Callback errors.
        request = manager.authorization_request("kc", "https://app.example.com/cb")
        for query in (
            {"code": "c", "state": "forged"},
            {"error": "access_denied", "state": request.state},
        ):
            try:
                await manager.complete_authorization("kc", "bob", query, request)
            except (StateMismatchError, AuthorizationDenied) as exc:
                errors.append(exc)

        # Wrong client secret, wrong password.
        wrong = OAuthClient(
            keycloak, ClientCredentials(CLIENT_ID, "wrong-secret-value"), manager.http_session()
        )
        shown.append(wrong)
        try:
            await wrong.client_credentials()
        except InvalidClientError as exc:
            errors.append(exc)
        try:
            await manager.login_with_password("kc", "alice", "not-the-password")
        except OAuthError as exc:
            errors.append(exc)
        shown.append(manager.stats)
    return shown, errors, client_side_secrets


async def test_no_secret_in_logs_reprs_or_errors(recorder: RecordingHandler) -> None:
    """Test that client secret, passwords, codes, verifiers and tokens never surface."""
    clock = FakeClock()
    async with running_provider() as provider:
        shown, errors, client_side = await _run_every_flow(provider, clock)
        secrets = {
            CLIENT_SECRET,
            "wrong-secret-value",
            "not-the-password",
            *USERS.values(),
            *provider.issued_secrets,
            *client_side,
        }
    secrets.add(base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode())
    assert len(provider.issued_secrets) >= 10  # the flows really ran
    assert len(errors) == 6
    assert all(isinstance(error, AiofinaccessError) for error in errors)
    assert recorder.texts  # DEBUG logging really captured records
    haystack = [*recorder.texts, *(repr(item) for item in shown)]
    for error in errors:
        haystack += _describe(error)
    leaks = [(secret[:6], text[:80]) for secret in secrets for text in haystack if secret in text]
    assert leaks == []


async def test_the_check_can_fail(recorder: RecordingHandler) -> None:
    """Test that the haystack search would catch a leak (guards against a vacuous pass)."""
    logging.getLogger("aiofinaccess").debug("leaking %s", "at-example-secret")
    assert any("at-example-secret" in text for text in recorder.texts)


async def test_store_writes_do_not_leak_through_aiosqlite_debug_logs(
    recorder: RecordingHandler, tmp_path: Path
) -> None:
    """aiosqlite logs call arguments at DEBUG; the stored token set must not be among them."""
    from aiofinaccess import SQLiteStore, TokenKey, TokenSet  # noqa: PLC0415

    store = SQLiteStore(tmp_path / "tokens.db")
    token_set = TokenSet(
        access_token="AT-sqlite-debug-0123456789", refresh_token="RT-sqlite-debug-0123456789"
    )
    version = await store.put(TokenKey("p", "u"), token_set, expected_version=None)
    await store.put(TokenKey("p", "u"), token_set, expected_version=version)
    await store.aclose()
    assert any("aiosqlite" in name for name in recorder.names)  # it did log
    assert not [text for text in recorder.texts if "sqlite-debug-0123456789" in text]
