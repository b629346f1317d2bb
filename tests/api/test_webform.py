"""The finAPI Web Form against the sandbox's Web Form 2.0, and the sandbox against the spec.

Every flow runs over real HTTP on 127.0.0.1: the SDK creates an import form with the user's
finAPI token, a headless "browser" (plain aiohttp) opens the form's page and presses a
button, and the SDK reads the outcome. The exchanges are then validated with openapi-core
against tests/specs/finapi-webform2-import.yaml.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from openapi_core import OpenAPI
from openapi_schema_validator import OAS30Validator
from yarl import URL

from aiofinaccess import ReauthorizationRequired, SessionManager
from aiofinaccess.api.finapi.webform import AccountType, _read_form, parse_timestamp
from aiofinaccess.api.pipeline import EndUser
from aiofinaccess.core.error_bodies import WebFormErrorBody
from aiofinaccess.core.errors import (
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    UnexpectedResponseError,
    ValidationError,
)
from aiofinaccess.core.tokens import ClientCredentials
from aiofinaccess.finapi import (
    BankConnectionImport,
    NewUser,
    Users,
    WebForm,
    WebFormCallbacks,
    WebForms,
    WebFormStatus,
)
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from tests.support.contract import spec_document, validate_exchange

# openapi-core cannot check Web Form 2.0's OAuth2 security scheme and says so once per
# request; the bearer header itself is what the sandbox checks.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")

PASSWORD = "web-form-password-1"
SPEC_HOST = "https://webform-sandbox.finapi.io"


DOCUMENT = spec_document("finapi-webform2-import.yaml")
SPEC = OpenAPI.from_dict(DOCUMENT)


def validate_exchanges(sandbox: Sandbox) -> set[int]:
    """Validate every Web Form API exchange in the journal; return the statuses seen."""
    statuses = set()
    for exchange in sandbox.state.journal:
        if exchange.path.startswith("/api/webForms"):
            # A refused body is, by design, not a valid request.
            validate_exchange(SPEC, SPEC_HOST, exchange, request_too=exchange.status != 400)
            statuses.add(exchange.status)
    return statuses


def sent_to_web_form(sandbox: Sandbox) -> list[str]:
    return [
        f"{exchange.method} {exchange.path}"
        for exchange in sandbox.state.journal
        if exchange.path.startswith("/api/webForms")
    ]


class _FormReader(HTMLParser):
    """The form and its submit buttons on the sandbox's web form page."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.buttons: dict[str, tuple[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action = named.get("action")
        elif tag == "button" and named.get("type") == "submit":
            self.buttons[named["value"]] = (named["name"], named["value"])


async def press(http: aiohttp.ClientSession, url: str, button: str) -> int:
    """Open the web form page like a browser and press ``button``; the answer's status.

    The redirect to a form's ``redirectUrl`` (303) is not followed: that is the app's page.
    """
    async with http.get(url) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        reader = _FormReader()
        reader.feed(await response.text())
    assert reader.action is not None
    name, value = reader.buttons[button]
    target = URL(url).join(URL(reader.action))
    async with http.post(target, data={name: value}, allow_redirects=False) as response:
        await response.read()
        return response.status


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(record_requests=True)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def alice(sandbox_manager: SessionManager) -> str:
    """A finAPI user whose tokens the manager holds."""
    await Users(sandbox_manager).create_and_login(NewUser(id="alice", password=PASSWORD))
    return "alice"


@pytest.fixture
def web_forms(sandbox_manager: SessionManager) -> WebForms:
    return WebForms(sandbox_manager)


@attrs.define
class CallbackTarget:
    url: str
    received: list[tuple[dict[str, Any], dict[str, str]]]


@pytest.fixture
async def callback_target() -> AsyncIterator[CallbackTarget]:
    """A tiny app on 127.0.0.1 that records what finAPI POSTs to ``callbacks.finalised``."""
    received: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def finalised(request: web.Request) -> web.Response:
        received.append((await request.json(), dict(request.query)))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/finalised", finalised)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield CallbackTarget(f"http://127.0.0.1:{port}/finalised?state=42", received)
    finally:
        await runner.cleanup()


class TestImport:
    async def test_create_open_complete(
        self, alice: str, web_forms: WebForms, sandbox: Sandbox, http: aiohttp.ClientSession
    ) -> None:
        """The whole flow: form, page, complete button, a bank connection id."""
        created = await web_forms.import_bank_connection(
            alice,
            BankConnectionImport(
                bank_id=280001,
                bank_connection_name="Main account",
                account_types=[AccountType.CHECKING, AccountType.SAVINGS],
                max_days_for_download=90,
            ),
            end_user=EndUser(ip_address="203.0.113.7", user_agent="Mozilla/5.0"),
        )
        assert created.url == f"{sandbox.base_url}/wf/{created.id}"
        assert len(created.id) == 36
        assert created.status == WebFormStatus.NOT_YET_OPENED
        assert created.type == "BANK_CONNECTION_IMPORT"
        assert not created.finished
        assert created.payload.bank_connection_id is None
        assert created.created is not None
        assert created.expires is not None
        assert (created.expires - created.created).total_seconds() == 1200
        sent = next(e for e in sandbox.state.journal if e.path.endswith("/bankConnectionImport"))
        assert sent.headers["PSU-IP-Address"] == "203.0.113.7"
        assert b'"bank": {"id": 280001}' in sent.body
        assert b'"accountTypes": ["CHECKING", "SAVINGS"]' in sent.body

        async with http.get(created.url) as page:
            assert page.status == 200
        assert (await web_forms.get(alice, created.id)).status == "IN_PROGRESS"
        assert await press(http, created.url, "complete") == 200

        done = await web_forms.get(alice, created.id)
        assert done.status == WebFormStatus.COMPLETED
        assert done.finished
        assert isinstance(done.payload.bank_connection_id, int)
        assert done.payload.error_code is None
        async with http.get(created.url) as page:
            assert page.status == 410  # the link works once

    async def test_without_details_sends_an_empty_body(
        self, alice: str, web_forms: WebForms, sandbox: Sandbox
    ) -> None:
        """The end user then chooses the bank on the form."""
        await web_forms.import_bank_connection(alice)
        sent = next(e for e in sandbox.state.journal if e.path.endswith("/bankConnectionImport"))
        assert sent.body == b"{}"

    @pytest.mark.parametrize(
        "outcome",
        [("abort", "ABORTED", None), ("error", "COMPLETED_WITH_ERROR", "BANK_SERVER_REJECTION")],
    )
    async def test_abort_and_error(
        self,
        alice: str,
        web_forms: WebForms,
        http: aiohttp.ClientSession,
        outcome: tuple[str, str, str | None],
    ) -> None:
        """Abort is a button; an error outcome is posted directly (no button offers it)."""
        action, status, error_code = outcome
        created = await web_forms.import_bank_connection(alice)
        if action == "abort":
            assert await press(http, created.url, "abort") == 200
        else:
            async with http.post(created.url, data={"action": action}) as response:
                assert response.status == 200
        form = await web_forms.get(alice, created.id)
        assert (form.status, form.finished) == (status, True)
        assert form.payload.bank_connection_id is None
        assert form.payload.error_code == error_code

    async def test_expires_after_twenty_minutes(
        self, alice: str, web_forms: WebForms, sandbox: Sandbox, http: aiohttp.ClientSession
    ) -> None:
        """Not yet at 1199 s; EXPIRED (final) at 1201 s, and the page is gone."""
        created = await web_forms.import_bank_connection(alice)
        sandbox.advance(1199)
        assert (await web_forms.get(alice, created.id)).status == "NOT_YET_OPENED"
        sandbox.advance(2)
        expired = await web_forms.get(alice, created.id)
        assert (expired.status, expired.finished) == ("EXPIRED", True)
        async with http.get(created.url) as page:
            assert page.status == 410
        async with http.post(created.url, data={"action": "complete"}) as response:
            assert response.status == 410
        assert (await web_forms.get(alice, created.id)).status == "EXPIRED"


class TestRefusals:
    async def test_another_users_form_is_not_found(
        self, alice: str, web_forms: WebForms, sandbox_manager: SessionManager
    ) -> None:
        """Bob cannot read Alice's form: 404, as for an id that does not exist."""
        await Users(sandbox_manager).create_and_login(NewUser(id="bob", password=PASSWORD))
        created = await web_forms.import_bank_connection(alice)
        with pytest.raises(NotFoundError) as info:
            await web_forms.get("bob", created.id)
        assert isinstance(info.value.body, WebFormErrorBody)
        assert info.value.code == "NOT_FOUND"
        assert info.value.body.endpoint == f"GET /api/webForms/{created.id}"
        with pytest.raises(NotFoundError):
            await web_forms.get(alice, "00000000-0000-0000-0000-000000000000")

    async def test_expired_user_token_is_renewed_once(
        self, alice: str, web_forms: WebForms, sandbox: Sandbox
    ) -> None:
        """The sandbox clock passes the token's hour: 401, one refresh, then the answer."""
        created = await web_forms.import_bank_connection(alice)
        refreshes = sandbox.stats()["token_requests"].get("finapi_refresh_token", 0)
        sandbox.advance(3601)
        form = await web_forms.get(alice, created.id)
        assert form.status == "EXPIRED"
        assert sandbox.stats()["token_requests"]["finapi_refresh_token"] == refreshes + 1
        assert [e.status for e in sandbox.state.journal if e.path.startswith("/api/webForms/")][
            -2:
        ] == [401, 200]

    async def test_revoked_user_needs_reauthorization(
        self,
        alice: str,
        web_forms: WebForms,
        sandbox: Sandbox,
        sandbox_manager: SessionManager,
        http: aiohttp.ClientSession,
    ) -> None:
        """finAPI killed the grant: 401, the refresh is refused, the user must log in again."""
        token_set = await sandbox_manager.token_set("finapi", alice)
        assert token_set.refresh_token is not None
        client = await sandbox_manager.access_token("finapi")
        async with http.post(
            sandbox.base_url + "/api/v2/oauth/revoke",
            headers={"Authorization": f"Bearer {client}"},
            data={"token": token_set.refresh_token.reveal(), "token_type_hint": "refresh_token"},
        ) as response:
            assert response.status == 200
        with pytest.raises(ReauthorizationRequired):
            await web_forms.import_bank_connection(alice)
        assert sent_to_web_form(sandbox) == ["POST /api/webForms/bankConnectionImport"]

    async def test_user_without_tokens_sends_nothing(
        self, web_forms: WebForms, sandbox: Sandbox
    ) -> None:
        """No token set for the user: re-authorization, before any request."""
        with pytest.raises(ReauthorizationRequired):
            await web_forms.import_bank_connection("nobody")
        assert sent_to_web_form(sandbox) == []

    @pytest.mark.parametrize(
        ("fields", "named"),
        [
            ({"bank_id": 1, "bank_search": "Sparkasse"}, "bank_id"),
            ({"bank_connection_name": ""}, "bank_connection_name"),
            ({"bank_connection_name": "x" * 65}, "bank_connection_name"),
            ({"max_days_for_download": 3651}, "max_days_for_download"),
            ({"max_days_for_download": -1}, "max_days_for_download"),
            ({"account_types": ("CHECKING", "CHECKING")}, "account_types"),
            ({"account_types": "CHECKING"}, "account_types"),
            ({"redirect_url": "http://shop.example.com/back"}, "redirect_url"),
            ({"redirect_url": "https://" + "a" * 2048}, "redirect_url"),
            ({"profile_id": "too-short"}, "profile_id"),
        ],
    )
    async def test_limits_are_checked_before_sending(
        self,
        alice: str,
        web_forms: WebForms,
        sandbox: Sandbox,
        fields: dict[str, Any],
        named: str,
    ) -> None:
        """ValidationError names the field; nothing reaches the Web Form host."""
        with pytest.raises(ValidationError, match=named):
            await web_forms.import_bank_connection(alice, BankConnectionImport(**fields))
        assert sent_to_web_form(sandbox) == []

    def test_callback_url_must_be_https(self) -> None:
        """http only to a loopback host (the local sandbox)."""
        with pytest.raises(ValidationError, match=r"callbacks\.finalised"):
            WebFormCallbacks("http://shop.example.com/finalised")
        with pytest.raises(ValidationError, match=r"callbacks\.finalised"):
            WebFormCallbacks("not a url")
        assert WebFormCallbacks("http://localhost:8080/cb").finalised is not None
        assert WebFormCallbacks("https://shop.example.com/cb?state=1").finalised is not None

    async def test_server_refusal_is_a_bad_request(self, alice: str, web_forms: WebForms) -> None:
        """Account types are left to finAPI (it may add some): its 400 lists the field."""
        with pytest.raises(BadRequestError) as info:
            await web_forms.import_bank_connection(
                alice, BankConnectionImport(account_types=("GIRO",))
            )
        body = info.value.body
        assert isinstance(body, WebFormErrorBody)
        assert body.code == "BAD_REQUEST"
        assert body.description is not None
        assert body.description.startswith("accountTypes[0]: must be one of")
        assert body.endpoint == "POST /api/webForms/bankConnectionImport"

    async def test_provider_without_web_form_host(
        self, sandbox: Sandbox, sandbox_manager: SessionManager
    ) -> None:
        """Only finAPI providers have a Web Form host."""
        with pytest.raises(ConfigurationError, match="web_form_url"):
            WebForms(sandbox_manager, "everifin")


class TestWaiting:
    async def test_wait_until_finished(
        self, alice: str, web_forms: WebForms, sandbox: Sandbox, http: aiohttp.ClientSession
    ) -> None:
        """Polls until the end user completes the form in another task."""
        created = await web_forms.import_bank_connection(alice)

        async def end_user() -> None:
            await asyncio.sleep(0.05)
            assert await press(http, created.url, "complete") == 200

        browser = asyncio.create_task(end_user())
        form = await web_forms.wait_until_finished(alice, created.id, poll_interval=0.01, timeout=5)
        await browser
        assert form.status == "COMPLETED"
        assert form.payload.bank_connection_id is not None
        assert sent_to_web_form(sandbox).count(f"GET /api/webForms/{created.id}") >= 2

    async def test_wait_times_out(self, alice: str, web_forms: WebForms) -> None:
        """Nobody opens the form: TimeoutError naming the form and its last status."""
        created = await web_forms.import_bank_connection(alice)
        with pytest.raises(TimeoutError, match=f"{created.id}.*NOT_YET_OPENED"):
            await web_forms.wait_until_finished(alice, created.id, poll_interval=0.01, timeout=0.05)

    async def test_poll_interval_must_be_positive(self, alice: str, web_forms: WebForms) -> None:
        """Zero would hammer finAPI."""
        with pytest.raises(ValidationError, match="poll_interval"):
            await web_forms.wait_until_finished(alice, "any", poll_interval=0)


class TestCallback:
    async def test_finalised_callback_is_posted(
        self,
        alice: str,
        web_forms: WebForms,
        sandbox: Sandbox,
        http: aiohttp.ClientSession,
        callback_target: CallbackTarget,
    ) -> None:
        """The sandbox POSTs {webFormId, status} to callbacks.finalised, query kept."""
        created = await web_forms.import_bank_connection(
            alice, BankConnectionImport(callbacks=WebFormCallbacks(callback_target.url))
        )
        assert callback_target.received == []
        assert await press(http, created.url, "complete") == 200
        assert callback_target.received == [
            ({"webFormId": created.id, "status": "COMPLETED"}, {"state": "42"})
        ]
        schemas = DOCUMENT["components"]["schemas"]
        schema = schemas["WebFormCompletedCallback"]
        schema = {
            **schema,
            "properties": {**schema["properties"], "status": schemas["WebFormStatus"]},
        }
        OAS30Validator(schema).validate(callback_target.received[0][0])
        assert sandbox.stats()["webform_callbacks"] == {"sent": 1}

    async def test_unreachable_callback_does_not_fail_the_form(
        self,
        alice: str,
        web_forms: WebForms,
        sandbox: Sandbox,
        http: aiohttp.ClientSession,
        unused_tcp_port: int,
    ) -> None:
        """Best effort: the target is down, the end user still finishes."""
        created = await web_forms.import_bank_connection(
            alice,
            BankConnectionImport(
                callbacks=WebFormCallbacks(f"http://127.0.0.1:{unused_tcp_port}/finalised")
            ),
        )
        assert await press(http, created.url, "abort") == 200
        assert (await web_forms.get(alice, created.id)).status == "ABORTED"
        assert sandbox.stats()["webform_callbacks"] == {"failed": 1}


class TestModels:
    def test_body_nests_the_bank_and_leaves_out_unset_fields(self) -> None:
        """snake_case in, finAPI's camelCase out; bank_search becomes bank.search."""
        details = BankConnectionImport(
            bank_search="DE89370400440532013000",
            skip_positions_download=False,
            callbacks=WebFormCallbacks("https://shop.example.com/cb"),
            profile_id="a2c9fc3b-1777-403c-8b2f-1ce4d90157a2",
        )
        assert details.as_body() == {
            "skipPositionsDownload": False,
            "callbacks": {"finalised": "https://shop.example.com/cb"},
            "profileId": "a2c9fc3b-1777-403c-8b2f-1ce4d90157a2",
            "bank": {"search": "DE89370400440532013000"},
        }

    def test_web_form_is_read_leniently(self) -> None:
        """Unknown fields are ignored; a null payload is an empty one; unknown statuses kept."""
        body = {
            "id": "f" * 36,
            "url": "https://webform-sandbox.finapi.io/wf/x",
            "status": "SOMETHING_NEW",
            "payload": None,
            "createdAt": "not a time",
            "addedLater": True,
        }
        form = _read_form(json.dumps(body).encode(), "web form")
        assert form.status == "SOMETHING_NEW"
        assert not form.finished
        assert form.payload.bank_connection_id is None
        assert form.created is None

    def test_unreadable_body(self) -> None:
        """A 2xx body that is not JSON, or lacks an id, is an UnexpectedResponseError."""
        with pytest.raises(UnexpectedResponseError):
            _read_form(b'{"status": "COMPLETED"}', "web form")
        with pytest.raises(UnexpectedResponseError):
            _read_form(b"<html>", "web form")

    @pytest.mark.parametrize(
        ("text", "iso"),
        [
            ("2026-01-31T10:00:00.000+0000", "2026-01-31T10:00:00+00:00"),
            ("2026-01-31T10:00:00.250Z", "2026-01-31T10:00:00.250000+00:00"),
            ("2026-01-31T11:00:00+01:00", "2026-01-31T11:00:00+01:00"),
            ("2026-01-31T10:00:00", "2026-01-31T10:00:00+00:00"),
        ],
    )
    def test_timestamps(self, text: str, iso: str) -> None:
        """Web Form's Java format and other ISO 8601 forms; no offset means UTC."""
        parsed = parse_timestamp(text)
        assert parsed is not None
        assert parsed.isoformat() == iso
        assert parse_timestamp("31.01.2026") is None
        assert parse_timestamp(None) is None

    def test_final_statuses(self) -> None:
        """COMPLETED, COMPLETED_WITH_ERROR, EXPIRED and ABORTED are final."""
        final = {
            status
            for status in WebFormStatus
            if WebForm(id="x", url="u", status=status.value).finished
        }
        assert final == {"COMPLETED", "COMPLETED_WITH_ERROR", "EXPIRED", "ABORTED"}


class TestSandboxPages:
    async def test_unknown_page_and_bad_button(
        self, alice: str, web_forms: WebForms, sandbox: Sandbox, http: aiohttp.ClientSession
    ) -> None:
        """An unknown form's page is 404; an unknown action changes nothing."""
        async with http.get(sandbox.base_url + "/wf/nope") as page:
            assert page.status == 404
        created = await web_forms.import_bank_connection(alice)
        async with http.post(created.url, data={"action": "explode"}) as response:
            assert response.status == 400
        assert (await web_forms.get(alice, created.id)).status == "NOT_YET_OPENED"

    async def test_non_json_body(
        self,
        alice: str,
        sandbox: Sandbox,
        sandbox_manager: SessionManager,
        http: aiohttp.ClientSession,
    ) -> None:
        """A body that is not a JSON object is a 400 in the validation shape."""
        token = await sandbox_manager.access_token("finapi", alice)
        async with http.post(
            sandbox.base_url + "/api/webForms/bankConnectionImport",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            data=b"[1, 2]",
        ) as response:
            assert response.status == 400
            body = await response.json()
        assert body["errors"] == [{"field": "body", "message": "must be a JSON object"}]


async def test_exchanges_match_the_spec(
    alice: str,
    web_forms: WebForms,
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    unused_tcp_port: int,
) -> None:
    """201, 200, 400, 401 and 404 of both operations validate against finAPI's spec."""
    created = await web_forms.import_bank_connection(
        alice,
        BankConnectionImport(
            bank_id=280001,
            bank_connection_name="Contract",
            account_types=tuple(AccountType),
            max_days_for_download=3650,
            skip_positions_download=True,
            load_owner_data=True,
            redirect_url="https://shop.example.com/back",
            # https, as the spec demands; nothing listens there (the callback is best effort).
            callbacks=WebFormCallbacks(f"https://127.0.0.1:{unused_tcp_port}/finalised"),
            profile_id="a2c9fc3b-1777-403c-8b2f-1ce4d90157a2",
        ),
    )
    await web_forms.get(alice, created.id)
    await press(http, created.url, "complete")
    await web_forms.get(alice, created.id)
    aborted = await web_forms.import_bank_connection(alice)
    await press(http, aborted.url, "abort")
    await web_forms.get(alice, aborted.id)
    with pytest.raises(BadRequestError):
        await web_forms.import_bank_connection(alice, BankConnectionImport(account_types=("GIRO",)))
    with pytest.raises(NotFoundError):
        await web_forms.get(alice, "00000000-0000-0000-0000-000000000000")
    for method, path in (
        ("POST", "/api/webForms/bankConnectionImport"),
        ("GET", f"/api/webForms/{created.id}"),
    ):
        body = {} if method == "POST" else None
        async with http.request(method, sandbox.base_url + path, json=body) as response:
            assert response.status == 401
    assert validate_exchanges(sandbox) == {200, 201, 400, 401, 404}


async def test_web_forms_repr_and_config(sandbox: Sandbox, sandbox_manager: SessionManager) -> None:
    """The client names its host; a second finAPI provider gets its own Web Form host."""
    assert sandbox.base_url in repr(WebForms(sandbox_manager))
    provider = attrs.evolve(
        sandbox_manager.provider("finapi"),
        name="finapi-eu",
        web_form_url="https://webform-live.finapi.io",
    )
    sandbox_manager.register(provider, ClientCredentials("other", "other-secret"))
    assert "webform-live.finapi.io" in repr(WebForms(sandbox_manager, "finapi-eu"))
