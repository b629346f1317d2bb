"""Tests for aiofinaccess.oauth.error_bodies: the body shapes and the response-to-error mapping."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from aiofinaccess.core.error_bodies import (
    EverifinErrorBody,
    FinApiErrorBody,
    OAuthErrorBody,
    UnparsedErrorBody,
    WebFormErrorBody,
)
from aiofinaccess.core.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    EntityExistsError,
    ForbiddenError,
    InvalidClientError,
    LockedError,
    NotFoundError,
    OAuthError,
    RateLimitedError,
    ServerError,
    UnprocessableEntityError,
)
from aiofinaccess.oauth.error_bodies import error_from_response, parse_error_body, parse_retry_after

FINAPI_BODY = {
    "errors": [
        {
            "message": "User with id 'alice' already exists",
            "code": "ENTITY_EXISTS",
            "type": "BUSINESS",
            "multiStepAuthentication": None,
        }
    ],
    "date": "2020-11-19T16:54:06.854+01:00",
    "requestId": "selfgen-1",
    "endpoint": "POST /api/v2/users",
    "authContext": "1/21",
    "bank": None,
}


def _bytes(document: object) -> bytes:
    return json.dumps(document).encode()


class TestParseErrorBody:
    def test_finapi_shape(self) -> None:
        """finAPI's errors list with message/code/type and its envelope fields."""
        body = parse_error_body(_bytes(FINAPI_BODY), "application/json")
        assert isinstance(body, FinApiErrorBody)
        assert body.code == "ENTITY_EXISTS"
        assert body.errors[0].type == "BUSINESS"
        assert body.request_id == "selfgen-1"
        assert body.endpoint == "POST /api/v2/users"

    def test_finapi_510_keeps_multi_step_authentication(self) -> None:
        """The SCA challenge object survives parsing."""
        document = {
            "errors": [
                {
                    "message": "SCA",
                    "code": "ADDITIONAL_AUTHENTICATION_REQUIRED",
                    "type": "BUSINESS",
                    "multiStepAuthentication": {
                        "hash": "h",
                        "status": "CHALLENGE_RESPONSE_REQUIRED",
                    },
                }
            ]
        }
        body = parse_error_body(_bytes(document))
        assert isinstance(body, FinApiErrorBody)
        assert body.errors[0].multi_step_authentication == {
            "hash": "h",
            "status": "CHALLENGE_RESPONSE_REQUIRED",
        }

    def test_oauth_shape(self) -> None:
        """RFC 6749 error body."""
        body = parse_error_body(
            _bytes({"error": "invalid_grant", "error_description": "Stale token"})
        )
        assert body == OAuthErrorBody("invalid_grant", "Stale token")

    def test_finapi_misspelt_error_description(self) -> None:
        """The v1 spec's example spells errorDescription; accept both."""
        body = parse_error_body(_bytes({"error": "invalid_token", "errorDescription": "expired"}))
        assert isinstance(body, OAuthErrorBody)
        assert body.error_description == "expired"

    def test_everifin_shape(self) -> None:
        """Everifin's errors with code/title/detail plus meta."""
        document = {
            "errors": [
                {"code": "ACCOUNT_NOT_FOUND", "title": "Not found", "detail": "no such account"}
            ],
            "meta": {"status": "ERROR"},
        }
        body = parse_error_body(_bytes(document))
        assert isinstance(body, EverifinErrorBody)
        assert body.code == "ACCOUNT_NOT_FOUND"
        assert body.message == "Not found: no such account"
        assert body.meta == {"status": "ERROR"}

    @pytest.mark.parametrize("code", ["SOMETHING_NEW_IN_2027", "weird-lower", ""])
    def test_unknown_codes_are_kept(self, code: str) -> None:
        """The code set is open: unknown codes parse, an empty one becomes UNKNOWN."""
        body = parse_error_body(_bytes({"errors": [{"code": code, "message": "m"}]}))
        assert isinstance(body, FinApiErrorBody)
        assert body.code == (code or "UNKNOWN")

    def test_unknown_oauth_error_is_kept(self) -> None:
        """An OAuth error code nobody registered still parses."""
        body = parse_error_body(_bytes({"error": "brand_new_error"}))
        assert body == OAuthErrorBody("brand_new_error")

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"<html><body>502 Bad Gateway</body></html>",
            b'{"errors": [',
            b'{"errors": []}',
            b'{"errors": ["just a string"]}',
            b"[1, 2, 3]",
            b'"text"',
            b"\xff\xfe\x00",
            b'{"error": 42}',
        ],
    )
    def test_anything_else_is_unparsed_not_an_exception(self, raw: bytes) -> None:
        """Never raises; keeps only size and content type."""
        body = parse_error_body(raw, "text/html")
        assert body == UnparsedErrorBody("text/html", len(raw))


class TestErrorFromResponse:
    def test_finapi_422_is_an_api_error_with_code_and_request_id(self) -> None:
        """Status, code, request id and message are all there."""
        error = error_from_response(
            422, _bytes(FINAPI_BODY), CIMultiDict({"X-Request-Id": "rid-9"}), context="create user"
        )
        assert type(error) is EntityExistsError
        assert isinstance(error, UnprocessableEntityError)
        assert error.status == 422
        assert error.code == "ENTITY_EXISTS"
        assert error.request_id == "rid-9"
        assert "ENTITY_EXISTS" in str(error)
        assert "rid-9" in str(error)
        assert not error.retryable

    def test_our_request_id_is_used_when_the_response_has_none(self) -> None:
        """We always have a request id to quote."""
        error = error_from_response(500, b"", CIMultiDict(), request_id="ours")
        assert error.request_id == "ours"
        assert error.retryable

    def test_oauth_error(self) -> None:
        """OAuth-shaped bodies give OAuthError with error and description."""
        error = error_from_response(
            400,
            _bytes({"error": "invalid_grant", "error_description": "Token is not active"}),
            {},
            token_endpoint=True,
        )
        assert isinstance(error, OAuthError)
        assert not isinstance(error, InvalidClientError)
        assert error.error == "invalid_grant"
        assert error.error_description == "Token is not active"

    @pytest.mark.parametrize(
        ("status", "document"),
        [
            (401, {"error": "invalid_client", "error_description": "Invalid client credentials"}),
            (401, {"error": "unauthorized_client", "error_description": "Invalid client secret"}),
            (400, {"error": "invalid_client", "error_description": "Missing client_id"}),
            (401, {"errors": [{"code": "UNAUTHORIZED_ACCESS", "message": "bad client"}]}),
            (401, "not json"),
        ],
    )
    def test_bad_client_credentials_have_their_own_type(
        self, status: int, document: object
    ) -> None:
        """Every way a token endpoint refuses a client is InvalidClientError."""
        raw = document.encode() if isinstance(document, str) else _bytes(document)
        error = error_from_response(status, raw, {}, token_endpoint=True)
        assert isinstance(error, InvalidClientError)

    def test_401_outside_token_endpoint_is_not_invalid_client(self) -> None:
        """An API's 401 (expired bearer) is an AuthenticationError, whatever the body shape."""
        error = error_from_response(401, _bytes({"error": "invalid_token"}), {})
        assert type(error) is AuthenticationError

    @pytest.mark.parametrize(
        ("status", "error_type"),
        [
            (400, BadRequestError),
            (403, ForbiddenError),
            (404, NotFoundError),
            (422, UnprocessableEntityError),
            (423, LockedError),
            (429, RateLimitedError),
            (500, ServerError),
            (503, ServerError),
            (418, ApiError),
        ],
    )
    def test_api_statuses_have_types(self, status: int, error_type: type[ApiError]) -> None:
        """Each documented status has its own type; unknown ones are plain ApiError."""
        body = {"errors": [{"code": "ILLEGAL_ENTITY_STATE", "message": "m", "type": "BUSINESS"}]}
        error = error_from_response(status, _bytes(body), {})
        assert type(error) is error_type

    def test_web_form_shapes(self) -> None:
        """Web Form 2.0's {code, description} and its 400 field list."""
        body = parse_error_body(
            _bytes({"code": "NOT_FOUND", "description": "No web form", "timestamp": "t"})
        )
        assert body == WebFormErrorBody("NOT_FOUND", "No web form")
        listed = parse_error_body(
            _bytes({"errors": [{"field": "bank.id", "message": "must be set"}]})
        )
        assert isinstance(listed, WebFormErrorBody)
        assert listed.message == "bank.id: must be set"

    def test_retry_after_is_parsed(self) -> None:
        """429 carries the wait."""
        error = error_from_response(429, b"", CIMultiDict({"Retry-After": "7"}))
        assert error.retry_after == 7.0
        assert error.retryable


class TestRetryAfter:
    def test_seconds_and_dates(self) -> None:
        """Both forms of RFC 9110 Retry-After, and garbage."""
        assert parse_retry_after("120") == 120.0
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
        assert parse_retry_after("soon") is None
        assert parse_retry_after("inf") is None
        assert parse_retry_after(None) is None
