"""aiofinaccess.integrations.same_origin: the decision, header by header."""

from __future__ import annotations

from unittest.mock import Mock

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from aiofinaccess.integrations.same_origin import is_same_origin, origin_of
from aiofinaccess.integrations.web import ConnectFlow, WebConnect

APP = "https://app.example"


@pytest.mark.parametrize(
    ("origin", "referer", "fetch_site", "allowed"),
    [
        (APP, None, None, True),
        ("https://APP.example:443", None, None, True),
        (APP, None, "same-origin", True),
        (APP, "https://evil.example/", None, True),  # Origin decides when present
        ("https://evil.example", f"{APP}/page", None, False),
        ("https://evil.example", None, None, False),
        ("https://app.example:8443", None, None, False),
        ("http://app.example", None, None, False),
        ("https://sub.app.example", None, "same-site", False),
        (APP, None, "cross-site", False),  # never together in a browser: refused anyway
        (None, f"{APP}/accounts?x=1", None, True),
        (None, f"{APP}/accounts", "same-origin", True),
        (None, "https://evil.example/app.example", None, False),
        (None, "/relative", None, False),
        (None, None, None, False),
        (None, None, "same-origin", False),  # nothing names an origin
        ("null", None, "same-origin", True),  # Referrer-Policy: no-referrer
        ("null", None, None, False),
        ("null", None, "cross-site", False),
        ("null", "https://evil.example/", None, False),
        ("null", f"{APP}/", None, False),  # a sandboxed frame of the app: Referer is no proof
        ("https://[::1", None, None, False),
        ("javascript:alert(1)", None, None, False),
        (" " + APP + " ", None, " Same-Origin ", True),
    ],
)
def test_decision(
    origin: str | None, referer: str | None, fetch_site: str | None, allowed: bool
) -> None:
    assert is_same_origin(APP, origin=origin, referer=referer, sec_fetch_site=fetch_site) is allowed


def test_an_app_origin_that_is_no_origin_refuses_everything() -> None:
    assert not is_same_origin("not a url", origin="not a url", referer=None)
    assert not is_same_origin("", origin="", referer="")


def test_origin_of() -> None:
    assert origin_of("HTTPS://App.Example:443/x?y=1#z") == "https://app.example"
    assert origin_of("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert origin_of("ftp://app.example/") is None
    assert origin_of("null") is None
    assert origin_of(None) is None


@given(st.text(max_size=60), st.text(max_size=60), st.text(max_size=20))
def test_headers_never_raise_and_foreign_origins_never_pass(
    origin: str, referer: str, fetch_site: str
) -> None:
    """Whatever a client sends: a bool, and True only if a header names the app's origin."""
    allowed = is_same_origin(APP, origin=origin, referer=referer, sec_fetch_site=fetch_site)
    named = APP in (origin_of(origin.strip()), origin_of(referer.strip()))
    assert allowed in (True, False)
    assert not allowed or named or origin.strip() == "null"


@pytest.mark.parametrize(
    ("redirect_uri", "headers", "allowed"),
    [
        (None, {"Origin": "http://app.example"}, True),  # the request's own URL
        (None, {"Origin": "https://evil.example"}, False),
        (None, {"Referer": "http://app.example/accounts"}, True),
        (None, {}, False),
        # Configured: the public origin, whatever Host and scheme reach the worker.
        ("https://app.example/connect/everifin/callback", {"Origin": "https://app.example"}, True),
        ("https://app.example/connect/everifin/callback", {"Origin": "http://app.example"}, False),
    ],
)
def test_web_connect_same_origin(
    redirect_uri: str | None, headers: dict[str, str], allowed: bool
) -> None:
    """WebConnect.same_origin guards an aiohttp app's own POST routes (its disconnect)."""
    flow = Mock(spec=ConnectFlow, provider="everifin")
    connector = WebConnect(flow, user_id=lambda request: "alice", redirect_uri=redirect_uri)
    request = make_mocked_request("POST", "/disconnect", headers={"Host": "app.example", **headers})
    assert connector.same_origin(request) is allowed
