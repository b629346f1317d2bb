"""Keycloak's "Refresh Token Max Reuse" in the sandbox (``keycloak_refresh_max_reuse``).

With a max reuse of 1, the refresh token used last may be presented once more: what a worker
that died with the answer in flight leaves its successor to do. Beyond that, or with a token
issued before the last refresh, the client session is detached as at max reuse 0.
"""

from __future__ import annotations

import pytest

from aiofinaccess import ReauthorizationRequired, Secret, SessionManager
from aiofinaccess.sandbox import Sandbox, SandboxConfig


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(keycloak_refresh_max_reuse=1)


def first_refresh_token(sandbox: Sandbox, user: str) -> Secret:
    return Secret(sandbox.service("keycloak").seed_session(user)["refresh_token"])


async def rotate(manager: SessionManager, refresh_token: Secret) -> Secret:
    renewed = await manager.oauth("everifin").refresh(refresh_token)
    assert renewed.refresh_token is not None
    assert renewed.refresh_token != refresh_token
    return renewed.refresh_token


async def refused(manager: SessionManager, refresh_token: Secret) -> str | None:
    with pytest.raises(ReauthorizationRequired) as refusal:
        await manager.oauth("everifin").refresh(refresh_token)
    assert refusal.value.cause is not None
    return refusal.value.cause.body.message


async def test_a_refresh_whose_answer_was_lost_may_be_sent_once_more(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    first = first_refresh_token(sandbox, "alice")
    await rotate(sandbox_manager, first)  # its answer "lost"
    again = await rotate(sandbox_manager, first)
    await rotate(sandbox_manager, again)  # the session goes on from the replay's answer
    stats = sandbox.stats()
    assert (stats["refresh_reuses"], stats["reuse_violations"], stats["sessions_killed"]) == (
        1,
        0,
        0,
    )


async def test_a_second_replay_detaches_the_session(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    first = first_refresh_token(sandbox, "alice")
    await rotate(sandbox_manager, first)
    newest = await rotate(sandbox_manager, first)
    message = await refused(sandbox_manager, first)
    assert message == "Maximum allowed refresh token reuse exceeded"
    assert await refused(sandbox_manager, newest) == "Session doesn't have required client"
    assert (sandbox.stats()["reuse_violations"], sandbox.stats()["sessions_killed"]) == (1, 1)


async def test_a_token_issued_before_the_last_refresh_is_stale(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    first = first_refresh_token(sandbox, "alice")
    lost = await rotate(sandbox_manager, first)
    await rotate(sandbox_manager, first)  # the replay: `lost` was issued before it
    assert await refused(sandbox_manager, lost) == "Stale token"
    assert sandbox.stats()["sessions_killed"] == 1
