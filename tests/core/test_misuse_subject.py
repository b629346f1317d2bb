"""A subject that is not a ``str`` is refused at the door (issue 24, item 5): ``4242`` after
logging in as ``"4242"`` silently named another token set ("no_token_set")."""

from __future__ import annotations

import time

import pytest

from aiofinaccess import (
    ClientCredentials,
    Everifin,
    Schedule,
    Secret,
    SessionManager,
    TokenKey,
    TokenSet,
    UsageError,
)


def test_a_token_key_refuses_a_subject_that_is_not_a_str() -> None:
    for subject in (4242, 4242.0, b"4242", ["4242"]):
        with pytest.raises(UsageError, match="must be a str") as caught:
            TokenKey("everifin", subject)  # type: ignore[arg-type]
        assert "4242" not in str(caught.value)  # a user id is the app's to print


async def test_the_manager_refuses_an_int_subject_after_a_str_login() -> None:
    now = time.time()
    tokens = TokenSet(Secret("at"), "Bearer", now, now + 300, refresh_token=Secret("rt"))
    async with SessionManager(schedule=Schedule(enabled=False)) as manager:
        manager.register(Everifin.stage(), ClientCredentials("id", "secret"))
        await manager.store_token_set("everifin", "4242", tokens)
        assert await manager.access_token("everifin", "4242") == "at"
        with pytest.raises(UsageError, match="subject must be a str, not int"):
            await manager.access_token("everifin", 4242)  # type: ignore[arg-type]
