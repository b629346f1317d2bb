"""Attack: authorization-server mix-up (RFC 9207) by stripping ``iss`` from the callback.

A provider that advertises ``authorization_response_iss_parameter_supported`` (and Keycloak,
hence Everifin, which sends ``iss`` unless a client is set to "exclude issuer") always puts
``iss`` in its redirect. A callback without it did not come from that provider as sent: an
attacker removed it so that the issuer check (made only when ``iss`` is present) is skipped.
It is now refused. The requirement travels in the stored :class:`AuthorizationRequest`, so
the web flow and ``SessionManager.complete_authorization`` enforce it too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from aiofinaccess import AuthorizationFlowError, Everifin, Oidc, Provider, SessionManager
from aiofinaccess.errors import AuthorizationDenied
from aiofinaccess.oauth import AuthorizationRequest, build_authorization_request, parse_callback
from aiofinaccess.sandbox import Sandbox, headless_login

REDIRECT = "http://127.0.0.1/callback"
ISSUER = "https://idp.example.com/realms/x"
DOCUMENT = {
    "issuer": ISSUER,
    "token_endpoint": ISSUER + "/token",
    "authorization_endpoint": ISSUER + "/auth",
    "authorization_response_iss_parameter_supported": True,
}


def _request(provider: Provider) -> AuthorizationRequest:
    return build_authorization_request(provider, "client", REDIRECT)


def test_callback_without_iss_is_refused_when_the_provider_advertises_it() -> None:
    """The discovery document says ``iss`` is always sent: a callback without it is forged."""
    request = _request(Provider.from_discovery(DOCUMENT, name="idp"))
    with pytest.raises(AuthorizationFlowError, match="iss"):
        parse_callback({"code": "c", "state": request.state}, request)


def test_everifin_callback_without_iss_is_refused() -> None:
    """Keycloak presets (Everifin) require ``iss``: Keycloak sends it by default."""
    provider = Everifin.stage()
    request = _request(provider)
    with pytest.raises(AuthorizationFlowError, match="iss"):
        parse_callback({"code": "c", "state": request.state}, request)
    ok = parse_callback({"code": "c", "state": request.state, "iss": provider.issuer}, request)
    assert ok.issuer == provider.issuer


def test_error_redirect_without_iss_is_refused_too() -> None:
    """RFC 9207 checks error responses as well: a forged ``access_denied`` is not a denial."""
    request = _request(Oidc.keycloak("https://idp.example.com", "x"))
    with pytest.raises(AuthorizationFlowError, match="iss") as caught:
        parse_callback({"error": "access_denied", "state": request.state}, request)
    assert not isinstance(caught.value, AuthorizationDenied)


def test_wrong_iss_is_refused_without_being_told_the_issuer() -> None:
    """The request remembers its issuer: no ``expected_issuer`` argument needed."""
    request = _request(Everifin.stage())
    with pytest.raises(AuthorizationFlowError, match="not the expected"):
        parse_callback({"code": "c", "state": request.state, "iss": "https://evil"}, request)


def test_a_provider_without_the_parameter_still_works() -> None:
    """Providers that never send ``iss`` (not advertised, not Keycloak) are unaffected."""
    provider = Oidc.endpoints(
        name="plain", token_url=ISSUER + "/token", authorization_url=ISSUER + "/auth"
    )
    request = _request(provider)
    assert parse_callback({"code": "c", "state": request.state}, request).code.reveal() == "c"


def test_keycloak_client_set_to_exclude_issuer_can_opt_out() -> None:
    """A Keycloak client configured "exclude issuer from authentication response"."""
    provider = Everifin.at(
        "https://idp.example.com/auth", "https://api.example.com", require_callback_iss=False
    )
    request = _request(provider)
    assert parse_callback({"code": "c", "state": request.state}, request).code.reveal() == "c"


def test_the_requirement_survives_storage() -> None:
    """The web flow stores the request between begin and callback; the rule must survive."""
    stored = AuthorizationRequest.from_dict(_request(Everifin.stage()).to_dict())
    with pytest.raises(AuthorizationFlowError, match="iss"):
        parse_callback({"code": "c", "state": stored.state}, stored)


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_manager_refuses_a_sandbox_callback_stripped_of_iss(
    sandbox: Sandbox, sandbox_manager: SessionManager, browser: aiohttp.ClientSession
) -> None:
    """End to end: the real (sandbox) Keycloak callback, ``iss`` removed, is not exchanged."""
    request = sandbox_manager.authorization_request("everifin", REDIRECT)
    callback = await headless_login(browser, request.url, "alice", "alice-password")
    stripped = URL(str(callback)).without_query_params("iss")
    with pytest.raises(AuthorizationFlowError, match="iss"):
        await sandbox_manager.complete_authorization("everifin", "alice", str(stripped), request)
    assert sandbox.stats()["token_requests"].get("everifin_authorization_code", 0) == 0
