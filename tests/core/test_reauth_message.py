"""A ``ReauthorizationRequired`` that reaches the app names the provider and the user, and
says what to do (issue 24, item 3): ``access_token("everifin", "ghost")`` said only
``...required for token set 7e5b317adb9c: no_token_set``. The SDK's own logs keep the hash."""

from __future__ import annotations

import logging

import pytest

from aiofinaccess import ClientCredentials, Everifin, ReauthorizationRequired, SessionManager


async def test_the_message_names_provider_and_user_and_logs_keep_the_hash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with SessionManager() as manager:
        manager.register(Everifin.stage(), ClientCredentials("id", "secret"))
        with (
            caplog.at_level(logging.DEBUG, logger="aiofinaccess"),
            pytest.raises(ReauthorizationRequired) as caught,
        ):
            await manager.access_token("everifin", "ghost")
        hashed = manager.key("everifin", "ghost").hashed
    text = str(caught.value)
    assert "everifin" in text
    assert "'ghost'" in text
    assert "connect" in text  # what to do: send the user to connect again
    assert "no_token_set" in text
    assert "ghost" not in repr(caught.value)  # repr is what the SDK's logs print
    assert hashed in repr(caught.value)
    assert caplog.records  # the renewal logged its end
    assert not [r.getMessage() for r in caplog.records if "ghost" in r.getMessage()]


def test_without_provider_the_message_stays_as_it_was() -> None:
    error = ReauthorizationRequired("abc123", "invalid_grant")
    assert str(error) == "re-authorization required for token set abc123: invalid_grant"
