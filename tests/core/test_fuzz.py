"""Fuzzing with hypothesis: whatever a server or a browser sends, only typed errors come out.

Each property runs thousands of examples (``FUZZ_EXAMPLES``, default 2,000). The parsers under
test are pure, so this costs seconds.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from aiofinaccess import AiofinaccessError, Everifin, Provider, RefreshPolicy, TokenSet
from aiofinaccess.api.everifin.bankconnect import _items, envelope
from aiofinaccess.api.finapi.webform import _read_form
from aiofinaccess.api.models import read_model
from aiofinaccess.core.errors import ApiError
from aiofinaccess.core.lifecycle import decide, plan
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.everifin import Account, Transaction
from aiofinaccess.oauth.authorization import build_authorization_request, parse_callback
from aiofinaccess.oauth.client import parse_token_http_response
from aiofinaccess.oauth.error_bodies import error_from_response, parse_error_body, parse_retry_after
from aiofinaccess.oauth.transport import HttpResponse

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SENT = Anchor(wall=1_800_000_000.0, monotonic=1_000.0)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=6)
    ),
    max_leaves=25,
)
token_like = st.fixed_dictionaries(
    {},
    optional={
        "access_token": json_values | st.text(min_size=1, max_size=30),
        "token_type": json_values,
        "expires_in": json_values | st.integers(-10, 10**7).map(str) | st.integers(0, 10**7),
        "refresh_token": json_values | st.text(min_size=1, max_size=30),
        "refresh_expires_in": json_values | st.integers(0, 10**7),
        "scope": json_values,
        "id_token": json_values,
    },
)
bodies = st.binary(max_size=300) | json_values.map(lambda value: json.dumps(value).encode())
error_like = st.fixed_dictionaries(
    {},
    optional={
        "errors": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "code": json_values,
                    "message": json_values,
                    "title": json_values,
                    "detail": json_values,
                    "field": json_values,
                    "type": json_values,
                    "multiStepAuthentication": json_values,
                },
            )
            | json_values,
            max_size=4,
        ),
        "meta": json_values,
        "error": json_values,
        "error_description": json_values,
        "code": json_values,
        "description": json_values,
        "requestId": json_values,
    },
).map(lambda value: json.dumps(value).encode())


@FUZZ
@given(token_like, st.booleans(), st.none() | st.floats(1, 10**6))
def test_token_responses(
    body: dict[str, Any], zero_means_never: bool, default: float | None
) -> None:
    """A token response parses into a usable set or raises a typed error, nothing else."""
    try:
        token_set = parse_token_response(
            body,
            sent=SENT,
            zero_expires_in_means_never=zero_means_never,
            default_expires_in=default,
        )
    except AiofinaccessError:
        return
    assert isinstance(token_set, TokenSet)
    assert "Secret('***')" in repr(token_set)
    if len(token_set.access_token.reveal()) >= 12:  # short values occur in any repr by chance
        assert token_set.access_token.reveal() not in repr(token_set)
    deadlines = plan(token_set, RefreshPolicy())
    decide(deadlines, SENT.monotonic)
    assert deadlines.stale_at <= deadlines.must_refresh_at


@FUZZ
@given(bodies | error_like, st.integers(100, 599), st.none() | st.text(max_size=40), st.booleans())
def test_error_bodies_and_statuses(
    data: bytes, status: int, retry_after: str | None, token_endpoint: bool
) -> None:
    """Any body and status becomes an ApiError subclass; the parser itself never raises."""
    parse_error_body(data)
    headers = CIMultiDict({"Retry-After": retry_after} if retry_after is not None else {})
    error = error_from_response(status, data, headers, token_endpoint=token_endpoint)
    assert isinstance(error, ApiError)
    assert error.status == status
    str(error)
    if error.retry_after is not None:
        assert error.retry_after >= 0


@FUZZ
@given(st.text(max_size=60))
def test_retry_after(value: str) -> None:
    """Retry-After is seconds >= 0 or None."""
    seconds = parse_retry_after(value)
    assert seconds is None or seconds >= 0


REQUEST = build_authorization_request(Everifin.stage(), "client", "https://app.example.com/cb")
query_values = st.text(max_size=50) | st.just(REQUEST.state)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            ["code", "state", "error", "error_description", "iss", "session_state", "other"]
        ),
        query_values,
        max_size=6,
    ),
    st.booleans(),
)
def test_callback_urls(query: dict[str, str], as_url: bool) -> None:
    """A callback is accepted only with our state and a code; otherwise a typed error."""
    callback: Any = URL("https://app.example.com/cb").with_query(query) if as_url else query
    try:
        response = parse_callback(callback, REQUEST, expected_issuer=Everifin.stage().issuer)
    except AiofinaccessError:
        return
    assert query.get("state") == REQUEST.state
    assert response.code.reveal() == query["code"]


@FUZZ
@given(
    bodies
    | json_values.map(
        lambda data: json.dumps({"data": data, "meta": {"pagination": data}}).encode()
    )
)
def test_everifin_envelopes_and_items(data: bytes) -> None:
    """Envelopes and their items (accounts, transactions, paging meta) only ever fail typed."""
    response = HttpResponse(status=200, headers=CIMultiDict(), body=data)  # type: ignore[arg-type]
    for model in (Account, Transaction):
        try:
            items, meta = envelope(response, "fuzz")
            _items(items, model, "fuzz")
        except AiofinaccessError:
            continue
        assert isinstance(meta, dict)


@FUZZ
@given(json_values)
def test_resource_models(data: Any) -> None:
    """Model reading returns a model or fails with a typed error."""
    for model in (Account, Transaction):
        try:
            read = read_model(data, model, what="fuzz")
        except AiofinaccessError:
            continue
        assert isinstance(read, model)


@FUZZ
@given(
    st.text(max_size=20),
    st.text(max_size=60),
    st.booleans(),
    st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_provider_configuration(
    name: str, url: str, insecure: bool, default_expires: float | None
) -> None:
    """Any provider configuration is either valid or refused with a ConfigurationError."""
    try:
        provider = Provider(
            name=name,
            token_url=url,
            allow_insecure_http=insecure,
            default_expires_in=default_expires,
        )
    except (AiofinaccessError, ValueError, TypeError):
        return
    assert provider.token_url.is_absolute()
    assert provider.default_expires_in is None or provider.default_expires_in > 0


@FUZZ
@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_refresh_policy_configuration(fraction: float, low: float, high: float) -> None:
    """A refresh policy is valid or a ConfigurationError; a valid one gives sane leads."""
    try:
        policy = RefreshPolicy(lead_fraction=fraction, min_lead=low, max_lead=high)
    except AiofinaccessError:
        return
    for lifetime in (0.5, 2.0, 300.0, 3600.0):
        assert 0 <= policy.lead(lifetime) <= lifetime / 2


def _nested(depth: int, opener: bytes, closer: bytes, leaf: bytes) -> bytes:
    return opener * depth + leaf + closer * depth


nested_bodies = st.builds(
    _nested,
    st.integers(1, 200_000),
    st.sampled_from([b"[", b'{"a":', b'{"data":', b'{"errors":[', b'[{"x":']),
    st.sampled_from([b"]", b"}", b"}", b"]}", b"}]"]),
    st.sampled_from([b"1", b"", b"null", b'"s"']),
)


@settings(max_examples=min(EXAMPLES, 300), deadline=None)
@given(nested_bodies, st.integers(100, 599))
def test_deeply_nested_bodies(data: bytes, status: int) -> None:
    """JSON nested past the recursion limit fails typed in every parser (issue 12 item 9)."""
    response = HttpResponse(status=200, headers=CIMultiDict(), body=data)  # type: ignore[arg-type]
    parse_error_body(data)
    assert isinstance(error_from_response(status, data, CIMultiDict()), ApiError)
    for parse in (
        lambda: parse_token_http_response(Everifin.stage(), response, sent=SENT),
        lambda: envelope(response, "fuzz"),
        lambda: read_model(data, Account, what="fuzz"),
        lambda: _read_form(data, "fuzz"),
    ):
        try:
            parse()
        except AiofinaccessError:
            continue
