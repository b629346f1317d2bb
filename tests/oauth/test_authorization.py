"""Tests for aiofinaccess.oauth.authorization: authorization URLs, PKCE and callback checks."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from yarl import URL

from aiofinaccess import AuthorizationFlowError, Everifin, FinApi, Secret
from aiofinaccess.errors import AuthorizationDenied, ConfigurationError, StateMismatchError
from aiofinaccess.oauth import build_authorization_request, parse_callback
from aiofinaccess.oauth.authorization import AuthorizationRequest, pkce_challenge

EVERIFIN = Everifin.stage()
REDIRECT = "https://app.example.com/callback"


def _request(**kwargs: object) -> AuthorizationRequest:
    return build_authorization_request(EVERIFIN, "client-1", REDIRECT, **kwargs)  # type: ignore[arg-type]


class TestBuildAuthorizationRequest:
    def test_url_carries_every_parameter(self) -> None:
        """response_type, client, redirect, state, scope and the S256 challenge."""
        request = _request(extra_params={"prompt": "login"})
        query = request.yarl_url.query
        assert request.yarl_url.with_query(None) == EVERIFIN.authorization_url
        assert query["response_type"] == "code"
        assert query["client_id"] == "client-1"
        assert query["redirect_uri"] == REDIRECT
        assert query["state"] == request.state
        assert query["scope"] == "ais"
        assert query["code_challenge_method"] == "S256"
        assert query["prompt"] == "login"
        assert request.code_verifier is not None
        assert query["code_challenge"] == pkce_challenge(request.code_verifier)

    def test_pkce_matches_rfc7636_appendix_b(self) -> None:
        """The RFC's own test vector."""
        verifier = Secret("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    def test_verifier_has_a_legal_length_and_alphabet(self) -> None:
        """43-128 characters of [A-Za-z0-9-._~]."""
        verifier = _request().code_verifier
        assert verifier is not None
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier.reveal())
        digest = hashlib.sha256(verifier.reveal().encode()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == pkce_challenge(verifier)

    def test_states_and_verifiers_are_fresh_each_time(self) -> None:
        """No reuse across requests."""
        first, second = _request(), _request()
        assert first.state != second.state
        assert first.code_verifier != second.code_verifier

    def test_extra_params_cannot_override_ours(self) -> None:
        """A caller cannot accidentally replace state or the challenge."""
        request = _request(extra_params={"state": "attacker", "response_type": "token"})
        assert request.yarl_url.query["state"] == request.state != "attacker"
        assert request.yarl_url.query["response_type"] == "code"

    def test_without_pkce(self) -> None:
        """PKCE is opt-out (Everifin enables it per client)."""
        request = _request(pkce=False)
        assert request.code_verifier is None
        assert "code_challenge" not in request.yarl_url.query

    def test_provider_without_authorization_endpoint(self) -> None:
        """finAPI has no authorization-code flow."""
        with pytest.raises(ConfigurationError, match="authorization_url"):
            build_authorization_request(FinApi.sandbox(), "c", REDIRECT)

    def test_repr_hides_state_and_verifier(self) -> None:
        """The repr and str show the URL's endpoint, not its state, nonce or the verifier."""
        request = _request(extra_params={"nonce": "the-nonce-value"})
        assert request.code_verifier is not None
        for shown in (repr(request), str(request)):
            assert request.code_verifier.reveal() not in shown
            assert request.state not in shown
            assert "the-nonce-value" not in shown
            assert "https://" in shown  # still says where the browser goes

    def test_round_trips_through_a_dict(self) -> None:
        """For server-side storage between redirect and callback."""
        request = _request()
        assert AuthorizationRequest.from_dict(request.to_dict()) == request


class TestParseCallback:
    def test_round_trip(self) -> None:
        """A callback with our state yields the code, session_state and issuer."""
        request = _request()
        callback = URL(REDIRECT).with_query(
            code="the-code", state=request.state, session_state="ss", iss=EVERIFIN.issuer
        )
        response = parse_callback(callback, request, expected_issuer=EVERIFIN.issuer)
        assert response.code == Secret("the-code")
        assert response.session_state == "ss"
        assert response.issuer == EVERIFIN.issuer
        assert "the-code" not in repr(response)

    def test_accepts_a_query_mapping(self) -> None:
        """Web frameworks hand over the query as a mapping."""
        request = _request()
        response = parse_callback(
            {"code": "c", "state": request.state, "iss": EVERIFIN.issuer}, request
        )
        assert response.code == Secret("c")

    @pytest.mark.parametrize("state", [None, "", "forged", "x" * 43])
    def test_wrong_or_missing_state_is_refused(self, state: str | None) -> None:
        """State mismatch is its own error."""
        request = _request()
        query = {"code": "c"} if state is None else {"code": "c", "state": state}
        with pytest.raises(StateMismatchError):
            parse_callback(query, request)

    def test_state_is_checked_before_an_error_redirect(self) -> None:
        """A forged error redirect reports as a state mismatch."""
        with pytest.raises(StateMismatchError):
            parse_callback({"error": "access_denied", "state": "forged"}, _request())

    def test_error_redirect_becomes_authorization_denied(self) -> None:
        """access_denied and friends reach the app typed."""
        request = _request()
        with pytest.raises(AuthorizationDenied) as info:
            parse_callback(
                {
                    "error": "access_denied",
                    "error_description": "User cancelled",
                    "state": request.state,
                    "iss": EVERIFIN.issuer,
                },
                request,
            )
        assert info.value.error == "access_denied"
        assert info.value.error_description == "User cancelled"

    def test_unknown_error_code_is_kept(self) -> None:
        """An error we never heard of is still AuthorizationDenied."""
        request = _request()
        with pytest.raises(AuthorizationDenied) as info:
            parse_callback(
                {
                    "error": "temporarily_unavailable",
                    "state": request.state,
                    "iss": EVERIFIN.issuer,
                },
                request,
            )
        assert info.value.error == "temporarily_unavailable"

    def test_issuer_mismatch_is_refused(self) -> None:
        """RFC 9207 mix-up defence."""
        request = _request()
        with pytest.raises(AuthorizationFlowError, match="issuer"):
            parse_callback(
                {"code": "c", "state": request.state, "iss": "https://evil.example.com"},
                request,
                expected_issuer=EVERIFIN.issuer,
            )

    def test_neither_code_nor_error(self) -> None:
        """A callback must say something."""
        request = _request()
        with pytest.raises(AuthorizationFlowError, match="neither"):
            parse_callback({"state": request.state, "iss": EVERIFIN.issuer}, request)
