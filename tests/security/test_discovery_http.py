"""Attack: a network peer on the path to a plain-http issuer picks where secrets and codes go.

``discover()`` fetched ``{issuer}/.well-known/openid-configuration`` over plain http on any
host, and took every endpoint the document named. It now applies the ``allow_insecure_http``
rule of :class:`~aiofinaccess.Provider` (https, or http on loopback only) to the issuer
*before* sending anything, and to every endpoint in the document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess import Provider
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.oauth import discover


@pytest.fixture
async def idp() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A loopback issuer (plain http is allowed there) serving a document the test edits."""
    document: dict[str, Any] = {}

    async def well_known(request: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application()
    app.router.add_get("/realms/x/.well-known/openid-configuration", well_known)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    issuer = str(server.make_url("/realms/x"))
    document.update(issuer=issuer, token_endpoint=issuer + "/token")
    try:
        yield issuer, document
    finally:
        await server.close()


async def test_plain_http_issuer_off_loopback_is_refused_before_any_request() -> None:
    """No request leaves for ``http://idp.example.com``: the refusal comes first."""
    started: list[str] = []

    async def on_start(_: object, __: SimpleNamespace, params: Any) -> None:
        started.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        with pytest.raises(ConfigurationError, match="plain http"):
            await discover(session, "http://idp.example.com/realms/x", name="kc")
    assert started == []


@pytest.mark.parametrize(
    "field",
    [
        "jwks_uri",
        "userinfo_endpoint",
        "pushed_authorization_request_endpoint",
        "introspection_endpoint",
        "device_authorization_endpoint",
    ],
)
async def test_plain_http_endpoint_in_the_document_is_refused(
    idp: tuple[str, dict[str, Any]], field: str
) -> None:
    """Any endpoint the document names must follow the rule too, used by the SDK today or not."""
    issuer, document = idp
    document[field] = "http://evil.example.com/collect"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigurationError, match=field):
            await discover(session, issuer, name="kc")


async def test_plain_http_mtls_alias_is_refused(idp: tuple[str, dict[str, Any]]) -> None:
    """RFC 8705 ``mtls_endpoint_aliases`` are endpoints as well."""
    issuer, document = idp
    document["mtls_endpoint_aliases"] = {"token_endpoint": "http://evil.example.com/token"}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigurationError, match="mtls_endpoint_aliases"):
            await discover(session, issuer, name="kc")


async def test_allow_insecure_http_still_permits_them(idp: tuple[str, dict[str, Any]]) -> None:
    """The app's explicit opt-in keeps working (a lab network, a proxy on the host)."""
    issuer, document = idp
    document["jwks_uri"] = "http://keys.example.com/jwks"
    async with aiohttp.ClientSession() as session:
        provider = await discover(session, issuer, name="kc", allow_insecure_http=True)
    assert isinstance(provider, Provider)


def test_from_discovery_applies_the_rule_without_io() -> None:
    """The pure constructor checks the same, for apps that fetch the document themselves."""
    document = {
        "issuer": "https://idp.example.com/realms/x",
        "token_endpoint": "https://idp.example.com/realms/x/token",
        "userinfo_endpoint": "http://idp.example.com/realms/x/userinfo",
    }
    with pytest.raises(ConfigurationError, match="userinfo_endpoint"):
        Provider.from_discovery(document, name="kc")
    with pytest.raises(ConfigurationError, match="issuer"):
        Provider.from_discovery({**document, "issuer": "http://idp.example.com/x"}, name="kc")
