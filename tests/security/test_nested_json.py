"""Attack: a hostile API or IdP answers with JSON nested deeper than Python's recursion limit.

``json.loads`` raises ``RecursionError`` for such a body: not a ``ValueError``, so it escaped
every ``except ValueError`` of the parsers as an untyped crash (and ``parse_error_body``, which
"never raises", raised). Every parser of a server's body now turns it into its typed error.
The hypothesis fuzzing in ``tests/core/test_fuzz.py`` covers it too
(``test_deeply_nested_bodies``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from aiofinaccess import (
    ApiError,
    ClientCredentials,
    ConnectFlow,
    Everifin,
    FinApi,
    Schedule,
    SessionManager,
    SQLiteStore,
    StoreError,
    UnexpectedResponseError,
)
from aiofinaccess.api.everifin.bankconnect import envelope
from aiofinaccess.api.finapi.webform import _read_form
from aiofinaccess.api.models import read_model
from aiofinaccess.core.error_bodies import UnparsedErrorBody
from aiofinaccess.core.tokens import Anchor
from aiofinaccess.errors import ConfigurationError, TokenResponseError
from aiofinaccess.everifin import Account
from aiofinaccess.oauth import discover
from aiofinaccess.oauth.client import parse_token_http_response
from aiofinaccess.oauth.error_bodies import error_from_response, parse_error_body
from aiofinaccess.oauth.transport import HttpResponse
from aiofinaccess.stores.codec import JsonCodec

DEPTH = 100_000
ARRAYS = b"[" * DEPTH + b"]" * DEPTH
OBJECTS = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
INSIDE = b'{"access_token": "x", "data": ' + ARRAYS + b', "errors": ' + ARRAYS + b"}"
BODIES = pytest.mark.parametrize(
    "body", [ARRAYS, OBJECTS, INSIDE], ids=["arrays", "objects", "inside"]
)


def _response(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, headers=CIMultiDictProxy(CIMultiDict()), body=body)


@BODIES
def test_token_endpoint_nested_body_is_a_token_response_error(body: bytes) -> None:
    """oauth: a 200 from the token endpoint."""
    anchor = Anchor(wall=1.8e9, monotonic=1.0)
    with pytest.raises(TokenResponseError):
        parse_token_http_response(FinApi.sandbox(), _response(body), sent=anchor)


@BODIES
def test_error_body_nested_never_raises(body: bytes) -> None:
    """errors: the error-body parser keeps its promise to never raise."""
    assert isinstance(parse_error_body(body), UnparsedErrorBody)
    assert isinstance(error_from_response(400, body, CIMultiDict()), ApiError)
    assert isinstance(error_from_response(401, body, CIMultiDict(), token_endpoint=True), ApiError)


@BODIES
def test_bankconnect_nested_envelope_is_unexpected_response(body: bytes) -> None:
    """bankconnect: the data envelope."""
    with pytest.raises(UnexpectedResponseError):
        envelope(_response(body), "accounts")


@BODIES
def test_models_and_webform_nested_body_is_unexpected_response(body: bytes) -> None:
    """models (users and every resource model) and webform."""
    with pytest.raises(UnexpectedResponseError):
        read_model(body, Account, what="account")
    with pytest.raises(UnexpectedResponseError):
        _read_form(body, "web form")


def test_store_record_nested_is_a_store_error() -> None:
    """codec: a store row (written by whoever can write the store)."""
    with pytest.raises(StoreError):
        JsonCodec().decode(ARRAYS, kind="token_set", key="everifin:alice")


@pytest.fixture
async def nested_issuer() -> AsyncIterator[str]:
    async def well_known(request: web.Request) -> web.Response:
        return web.Response(body=OBJECTS, content_type="application/json")

    app = web.Application()
    app.router.add_get("/r/.well-known/openid-configuration", well_known)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/r"))
    finally:
        await server.close()


async def test_discovery_nested_document_is_a_configuration_error(nested_issuer: str) -> None:
    """oauth.discover over real HTTP."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigurationError, match="not JSON"):
            await discover(session, nested_issuer, name="idp")


@pytest.mark.parametrize("kind", ["req", "out"])
@pytest.mark.parametrize("record", [ARRAYS, b'{"x": 1}', b"[]"], ids=["deep", "keys", "list"])
async def test_web_flow_unreadable_pending_record_is_a_store_error(
    tmp_path: Path, kind: str, record: bytes
) -> None:
    """web: a pending record planted in a plain-JSON store (or Redis) fails typed, not crashes."""
    store = SQLiteStore(tmp_path / "tokens.db")
    async with SessionManager(store=store, schedule=Schedule(enabled=False)) as manager:
        manager.register(Everifin.stage(), ClientCredentials("c", "s"))
        flow = ConnectFlow(manager, "everifin")
        digest = hashlib.sha256(b"the-state").hexdigest()
        await store.put_pending(f"web:everifin:{kind}:{digest}", record, ttl=60)
        with pytest.raises(StoreError, match="pending authorization"):
            await flow.finish("alice", {"state": "the-state", "code": "c"})
