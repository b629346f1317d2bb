"""Tests for aiofinaccess.core.errors: the hierarchy's messages."""

from __future__ import annotations

from aiofinaccess.core.error_bodies import OAuthErrorBody
from aiofinaccess.core.errors import OAuthError, ReauthorizationRequired


class TestReauthorizationRequired:
    def test_message_has_reason_and_description_but_no_key(self) -> None:
        """The hashed key identifies the set; the description helps a human."""
        cause = OAuthError(400, OAuthErrorBody("invalid_grant", "Stale token"))
        error = ReauthorizationRequired("abc123", "invalid_grant", cause)
        assert "abc123" in str(error)
        assert "Stale token" in str(error)
        assert error.cause is cause
