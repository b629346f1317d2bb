"""Tests for aiofinaccess.core.tokens: secrets, token sets, response parsing, converters."""

from __future__ import annotations

import json
import pickle

import pytest

from aiofinaccess import ClientCredentials, Secret, TokenKey, TokenSet
from aiofinaccess.core.convert import display_converter, store_converter
from aiofinaccess.core.errors import TokenResponseError
from aiofinaccess.core.tokens import Anchor, client_label, parse_token_response
from aiofinaccess.errors import ConfigurationError

SENT = Anchor(wall=1_000.0, monotonic=50.0)


class TestSecret:
    def test_never_prints_its_value(self) -> None:
        """repr, str, format and containers all hide the value."""
        secret = Secret("hunter2-value")
        for text in (repr(secret), str(secret), f"{secret}", f"{secret!r:>20}", str([secret])):
            assert "hunter2" not in text
        assert secret.reveal() == "hunter2-value"

    def test_equality_is_by_value(self) -> None:
        """Two secrets with the same value are equal and hash alike; str is not a Secret."""
        assert Secret("a") == Secret("a")
        assert Secret("a") != Secret("b")
        assert hash(Secret("a")) == hash(Secret("a"))
        assert Secret("a") != "a"

    def test_wrapping_a_secret_keeps_the_value(self) -> None:
        """Secret(Secret(x)) is Secret(x)."""
        assert Secret(Secret("x")).reveal() == "x"

    def test_rejects_non_strings_without_echoing_them(self) -> None:
        """A bad type is a TypeError naming the type only."""
        with pytest.raises(TypeError, match="int") as info:
            Secret(123456789)  # type: ignore[arg-type]
        assert "123456789" not in str(info.value)

    def test_cannot_be_pickled(self) -> None:
        """Pickling would copy the value somewhere we cannot see."""
        with pytest.raises(TypeError):
            pickle.dumps(Secret("x"))

    def test_fingerprint_is_stable_and_short(self) -> None:
        """The fingerprint identifies a value without containing it."""
        assert Secret("abc").fingerprint() == Secret("abc").fingerprint()
        assert len(Secret("abc").fingerprint()) == 12


class TestClientCredentials:
    def test_secret_is_wrapped_and_redacted(self) -> None:
        """A plain str secret becomes a Secret and the repr hides it."""
        credentials = ClientCredentials("id", "s3cr3t-value")
        assert isinstance(credentials.client_secret, Secret)
        assert "s3cr3t" not in repr(credentials)

    def test_empty_client_id_is_a_configuration_error(self) -> None:
        """The message names the setting."""
        with pytest.raises(ConfigurationError, match="client_id"):
            ClientCredentials("")


class TestTokenKey:
    @pytest.mark.parametrize(
        "key",
        [
            TokenKey("finapi"),
            TokenKey("everifin", "user:with:colons"),
            TokenKey("finapi", client="id:with:colons#0123456789abcdef"),
        ],
    )
    def test_round_trips_through_str(self, key: TokenKey) -> None:
        """parse(str(key)) == key, even for subjects containing ':'."""
        assert TokenKey.parse(str(key)) == key

    def test_client_and_user_named_client_differ(self) -> None:
        """A user called 'client' is not the client token."""
        assert TokenKey("finapi") != TokenKey("finapi", "client")
        assert TokenKey.parse(str(TokenKey("finapi", "client"))).subject == "client"

    def test_bad_text_is_rejected(self) -> None:
        """Garbage does not parse."""
        with pytest.raises(ValueError, match="not a token key"):
            TokenKey.parse("nonsense")

    def test_empty_parts_are_refused(self) -> None:
        """An empty subject or provider cannot be stored and parsed back."""
        for parts in (("finapi", ""), ("", "alice"), ("fin:api", "alice")):
            with pytest.raises(ValueError, match="token key"):
                TokenKey(*parts)

    def test_the_client_label_names_the_client_never_the_secret(self) -> None:
        """Two secrets of one client id give two keys; the secret never appears."""
        one = client_label(ClientCredentials("id", "secret-one"))
        two = client_label(ClientCredentials("id", "secret-two"))
        assert one != two
        assert one.startswith("id#")
        assert "secret" not in one

    def test_hash_hides_the_user_id(self) -> None:
        """The log-safe hash does not contain the subject."""
        assert "alice" not in TokenKey("finapi", "alice").hashed


class TestParseTokenResponse:
    def test_keycloak_response(self) -> None:
        """Every Keycloak field lands in its place; unknown ones go to extra."""
        token_set = parse_token_response(
            {
                "access_token": "AT",
                "expires_in": 300,
                "refresh_expires_in": 1800,
                "refresh_token": "RT",
                "token_type": "Bearer",
                "id_token": "IDT",
                "not-before-policy": 0,
                "session_state": "abc",
                "scope": "ais",
            },
            sent=SENT,
        )
        assert token_set.access_token == Secret("AT")
        assert token_set.refresh_token == Secret("RT")
        assert token_set.id_token == Secret("IDT")
        assert token_set.expires_at == 1_300.0
        assert token_set.refresh_expires_at == 2_800.0
        assert token_set.scope == "ais"
        assert token_set.extra == {"not-before-policy": 0, "session_state": "abc"}
        assert token_set.expires_at_monotonic() == 350.0
        assert token_set.refresh_expires_at_monotonic() == 1_850.0

    def test_sets_share_their_short_strings_and_copies_share_extra(self) -> None:
        """Each set decoded from JSON kept its own "Bearer", scope and field names (issue 27:
        about 240 bytes of a Keycloak set); a copy of a set copied ``extra`` too."""
        first, second = (
            parse_token_response(
                json.loads(
                    f'{{"access_token": "AT{n}", "token_type": "Bearer", "scope": "openid ais",'
                    f' "session_state": "s{n}"}}'
                ),
                sent=SENT,
            )
            for n in (1, 2)
        )
        assert first.token_type is second.token_type
        assert first.scope is second.scope
        assert next(iter(first.extra)) is next(iter(second.extra))
        assert first.with_anchor(SENT).extra is first.extra
        assert TokenSet("AT").extra is TokenSet("AT2").extra == {}  # no dict a set when empty
        provider = json.loads('"everifin"')
        assert TokenKey(provider, "u").provider is TokenKey("everifin", "v").provider

    def test_expires_in_as_string(self) -> None:
        """Some servers send numbers as strings."""
        token_set = parse_token_response({"access_token": "AT", "expires_in": "60"}, sent=SENT)
        assert token_set.expires_at == 1_060.0

    def test_finapi_zero_means_never(self) -> None:
        """finAPI: expires_in 0 is a token that never expires."""
        token_set = parse_token_response(
            {"access_token": "AT", "expires_in": 0}, sent=SENT, zero_expires_in_means_never=True
        )
        assert token_set.expires_at is None
        assert token_set.lifetime is None

    def test_zero_elsewhere_means_expired(self) -> None:
        """Without the finAPI rule, 0 is "already expired"."""
        token_set = parse_token_response({"access_token": "AT", "expires_in": 0}, sent=SENT)
        assert token_set.expires_at == SENT.wall

    def test_missing_expires_in_uses_the_default(self) -> None:
        """A provider-configured default applies; without one the expiry is unknown."""
        assumed = parse_token_response({"access_token": "AT"}, sent=SENT, default_expires_in=600)
        assert assumed.expires_at == 1_600.0
        assert parse_token_response({"access_token": "AT"}, sent=SENT).expires_at is None

    def test_lowercase_bearer_is_kept(self) -> None:
        """finAPI says 'bearer'; it is data, not a reason to fail."""
        token_set = parse_token_response({"access_token": "AT", "token_type": "bearer"}, sent=SENT)
        assert token_set.token_type == "bearer"

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"access_token": ""},
            {"access_token": None},
            {"access_token": 42},
            ["access_token"],
            "access_token",
            None,
        ],
    )
    def test_missing_access_token_is_an_error(self, body: object) -> None:
        """Strict where it matters."""
        with pytest.raises(TokenResponseError):
            parse_token_response(body, sent=SENT)

    @pytest.mark.parametrize("value", ["soon", True, -5, float("nan"), [1]])
    def test_impossible_expires_in_is_an_error(self, value: object) -> None:
        """Lenient is not credulous."""
        with pytest.raises(TokenResponseError, match="expires_in"):
            parse_token_response({"access_token": "AT-secret", "expires_in": value}, sent=SENT)

    def test_error_messages_never_contain_tokens(self) -> None:
        """A bad field next to a token does not drag the token into the message."""
        with pytest.raises(TokenResponseError) as info:
            parse_token_response({"access_token": "AT-very-secret", "refresh_token": 7}, sent=SENT)
        assert "AT-very-secret" not in str(info.value)


class TestTokenSet:
    def test_repr_hides_every_token(self) -> None:
        """The repr shows expiry and presence, not values."""
        token_set = TokenSet(
            access_token="AT-secret",
            refresh_token="RT-secret",
            id_token="ID-secret",
            extra={"session_state": "s"},
        )
        text = repr(token_set)
        assert "secret" not in text
        assert "session_state" in text

    def test_refresh_without_refresh_token_keeps_the_old_one(self) -> None:
        """RFC 6749 6: no new refresh token means the old one stays valid."""
        old = TokenSet(access_token="A1", refresh_token="R1", refresh_expires_at=99.0)
        new = TokenSet(access_token="A2").merged_after_refresh(old)
        assert new.refresh_token == Secret("R1")
        assert new.refresh_expires_at == 99.0

    def test_refresh_with_a_new_refresh_token_replaces_it(self) -> None:
        """Rotation: the new refresh token wins."""
        old = TokenSet(access_token="A1", refresh_token="R1")
        new = TokenSet(access_token="A2", refresh_token="R2").merged_after_refresh(old)
        assert new.refresh_token == Secret("R2")


class TestAges:
    """A set's age, and the anchor of a set whose age a store measured (issue 22, finding 15)."""

    def test_an_anchored_sets_age_is_on_the_monotonic_clock(self) -> None:
        """Issued at SENT (monotonic 50): 30 s old at monotonic 80, whatever the wall says."""
        token_set = parse_token_response({"access_token": "a"}, sent=SENT)
        assert token_set.age(monotonic=80.0, wall=-1e9) == 30.0

    def test_an_unanchored_sets_age_is_on_the_wall_clock_and_never_negative(self) -> None:
        """Without an anchor the set's instants are the given wall clock's."""
        token_set = TokenSet(access_token="a", issued_at=1_000.0)
        assert token_set.age(monotonic=0.0, wall=1_012.5) == 12.5
        assert token_set.age(monotonic=0.0, wall=900.0) == 0.0

    def test_an_aged_anchor_places_expiry_by_age_alone(self) -> None:
        """A set 70 s into a 60 s life expired 10 s before the reading, on any wall clock."""
        anchor = Anchor.aged(issued_at=5_000.0, age=70.0, monotonic=200.0)
        token_set = TokenSet(access_token="a", issued_at=5_000.0, expires_at=5_060.0)
        assert token_set.with_anchor(anchor).expires_at_monotonic() == 190.0


class TestConverters:
    def test_store_converter_round_trips_without_the_anchor(self) -> None:
        """Persisted form has the secrets and wall-clock times, not process-local anchors."""
        token_set = parse_token_response(
            {"access_token": "AT", "refresh_token": "RT", "expires_in": 60, "x": 1}, sent=SENT
        )
        data = store_converter.unstructure(token_set)
        assert data["access_token"] == "AT"
        assert "anchor" not in data
        restored = store_converter.structure(data, TokenSet)
        assert restored == token_set
        assert restored.anchor is None

    def test_display_converter_redacts(self) -> None:
        """The display form never reveals a secret."""
        token_set = TokenSet(access_token="AT-x", refresh_token="RT-x")
        data = display_converter().unstructure(token_set)
        assert data["access_token"] == "***"
        assert data["refresh_token"] == "***"
