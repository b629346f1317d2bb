"""Bad configuration fails at construction with one line that names the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiofinaccess import (
    BearerAuth,
    ClientCredentials,
    Everifin,
    FinApi,
    Oidc,
    Provider,
    RefreshPolicy,
    RetryPolicy,
    Schedule,
    SessionManager,
    SQLiteStore,
    Timeouts,
    UsageError,
)
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.finapi import Users
from aiofinaccess.stores.codec import FernetCodec
from aiofinaccess.stores.redis import RedisStore

CASES: list[tuple[str, Any, str]] = [
    ("missing client id", lambda: ClientCredentials(""), "client_id"),
    ("bad URL", lambda: Provider(name="x", token_url="not a url"), "token_url"),
    (
        "plain http elsewhere",
        lambda: Oidc.endpoints(name="x", token_url="http://idp.example.com/t"),
        "token_url",
    ),
    ("empty realm", lambda: Everifin.stage(realm=""), "realm"),
    ("realm with a slash", lambda: Everifin.stage(realm="a/b"), "realm"),
    ("unknown scope", lambda: Everifin.stage(scopes=("payments",)), "scopes"),
    ("unknown finAPI version", lambda: FinApi.sandbox(api_version="v9"), "api_version"),  # type: ignore[arg-type]
    ("negative lead", lambda: RefreshPolicy(min_lead=-1), "min_lead"),
    ("zero attempts", lambda: RetryPolicy(attempts=0), "attempts"),
    (
        "a lease of no time",
        lambda: SessionManager(timeouts=Timeouts(lease=0)),
        "Timeouts.lease",
    ),
    (
        "an endless store call",
        lambda: SessionManager(timeouts=Timeouts(store=float("inf"))),
        "Timeouts.store",
    ),
    ("jitter out of range", lambda: SessionManager(schedule=Schedule(jitter=2)), "Schedule.jitter"),
    ("bad encryption key", lambda: FernetCodec(["not-a-key"]), "encryption keys"),
    ("no encryption key", lambda: FernetCodec([]), "encryption keys"),
    ("Redis URL scheme", lambda: RedisStore("http://127.0.0.1:6379"), "url"),
]


@pytest.mark.parametrize(("case", "build", "setting"), CASES, ids=[case for case, _, _ in CASES])
def test_bad_settings_fail_at_construction(case: str, build: Any, setting: str) -> None:
    """The error is a ConfigurationError on one line, naming what to fix."""
    with pytest.raises(ConfigurationError) as info:
        build()
    message = str(info.value)
    assert setting in message
    assert "\n" not in message


def test_store_path_that_cannot_be_written(tmp_path: Path) -> None:
    """A missing directory is refused before any connection is attempted."""
    with pytest.raises(ConfigurationError, match="path"):
        SQLiteStore(tmp_path / "missing" / "tokens.db")


async def test_missing_client_secret_is_refused_at_registration() -> None:
    """A confidential client without its secret cannot be registered."""
    async with SessionManager() as manager:
        with pytest.raises(ConfigurationError, match="client_secret"):
            manager.register(Everifin.stage(), ClientCredentials("id"))


async def test_unknown_provider_is_refused_before_any_request() -> None:
    """Middleware and resource clients check the provider when built."""
    async with SessionManager() as manager:
        with pytest.raises(UsageError, match="not registered"):
            BearerAuth(manager, "nope")
        with pytest.raises(UsageError, match="not registered"):
            Users(manager, "nope")
        with pytest.raises(UsageError, match="not registered"):
            await manager.access_token("nope")


async def test_registering_twice_is_refused() -> None:
    """Two providers with one name would share token keys."""
    async with SessionManager() as manager:
        manager.register(FinApi.sandbox(), ClientCredentials("id", "secret"))
        with pytest.raises(ConfigurationError, match="already registered"):
            manager.register(FinApi.live(), ClientCredentials("id", "secret"))
