"""PSD2's unattended-update budget on finAPI's update calls, over real HTTP to the sandbox: four
background updates without the user go, the fifth is refused before anything is sent and names
when the next may go; with the user present (PSU metadata) an update takes nothing; the
deprecated update form counts the same."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.api.pipeline import EndUser
from aiofinaccess.errors import UpdateBudgetExhausted, ValidationError
from aiofinaccess.finapi import (
    BackgroundUpdate,
    ConnectionUpdates,
    UpdateCompleted,
    UpdateRoutes,
    WebFormRequired,
)
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from tests.support.finapi_journey import PRESENT, import_connection

USER = "budget-alice"
FAST = {"poll_interval": 0.01, "timeout": 10.0}


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(finapi_version="v2", record_requests=True)


def sent(sandbox: Sandbox, path: str) -> int:
    return sum(1 for exchange in sandbox.state.journal if exchange.path == path)


async def test_the_fifth_unattended_update_is_refused_unsent(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    connection_id = await import_connection(sandbox_manager, USER)
    updates = ConnectionUpdates(sandbox_manager)
    first = dt.datetime.now(dt.UTC)
    for _ in range(4):
        outcome = await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
        assert isinstance(outcome, UpdateCompleted)
    with pytest.raises(UpdateBudgetExhausted) as refused:
        await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
    assert sent(sandbox, "/api/tasks/backgroundUpdate") == 4
    error = refused.value
    assert (error.provider, error.subject, error.connection) == ("finapi", USER, str(connection_id))
    assert error.next_allowed_at.tzinfo is not None
    assert first + dt.timedelta(hours=24) - dt.timedelta(seconds=5) <= error.next_allowed_at
    assert error.next_allowed_at <= dt.datetime.now(dt.UTC) + dt.timedelta(hours=24)
    assert USER not in str(error)
    # The user at the app: PSU metadata, and nothing is counted.
    for _ in range(2):
        outcome = await updates.update(
            USER, BackgroundUpdate(connection_id), end_user=PRESENT, **FAST
        )
        assert isinstance(outcome, UpdateCompleted)
    assert sent(sandbox, "/api/tasks/backgroundUpdate") == 6
    # An end user without an address does not say the user is there.
    with pytest.raises(UpdateBudgetExhausted):
        await updates.start(USER, BackgroundUpdate(connection_id), end_user=None)
    assert sent(sandbox, "/api/tasks/backgroundUpdate") == 6


async def test_a_refused_body_takes_no_slot(sandbox_manager: SessionManager) -> None:
    """A body that fails its own checks is refused before the budget is asked."""
    connection_id = await import_connection(sandbox_manager, USER)
    updates = ConnectionUpdates(sandbox_manager)
    partial = EndUser(user_agent="Mozilla/5.0")
    for _ in range(6):
        with pytest.raises(ValueError, match="ip_address"):
            await updates.start(USER, BackgroundUpdate(connection_id), end_user=partial)
    for _ in range(4):
        await updates.update(USER, BackgroundUpdate(connection_id), **FAST)


async def test_the_update_form_counts_too_and_connections_are_apart(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    connection_id = await import_connection(sandbox_manager, USER)
    forms = ConnectionUpdates(sandbox_manager, routes=UpdateRoutes(via="web_form"))
    for _ in range(4):
        assert isinstance(
            await forms.update(USER, BackgroundUpdate(connection_id)), WebFormRequired
        )
    with pytest.raises(UpdateBudgetExhausted):
        await forms.update(USER, BackgroundUpdate(connection_id))
    assert sent(sandbox, "/api/webForms/bankConnectionUpdate") == 4
    assert isinstance(
        await forms.update(USER, BackgroundUpdate(connection_id), end_user=PRESENT),
        WebFormRequired,
    )
    other = await import_connection(sandbox_manager, USER, create=False)
    assert isinstance(await forms.update(USER, BackgroundUpdate(other)), WebFormRequired)


@pytest.mark.parametrize(
    "address",
    ["not-an-ip", "0.0.0.0", "::", "224.0.0.1", " 203.0.113.5", "1" * 100_000],  # noqa: S104
)
@pytest.mark.parametrize("via", ["task", "web_form"])
async def test_a_junk_address_is_refused_not_taken_for_a_present_user(
    sandbox: Sandbox, sandbox_manager: SessionManager, address: str, via: str
) -> None:
    """An end user's address is what exempts an update from the budget: one that is no address
    of a user (junk, unspecified, multicast) is refused, sending nothing and taking nothing."""
    connection_id = await import_connection(sandbox_manager, USER)
    updates = ConnectionUpdates(sandbox_manager, routes=UpdateRoutes(via=via))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="ip_address") as refused:
        attrs.evolve(PRESENT, ip_address=address)  # refused when made: it cannot be passed
    assert len(str(refused.value)) < 200  # the caller's text is not echoed
    assert sent(sandbox, "/api/tasks/backgroundUpdate") == 0
    assert sent(sandbox, "/api/webForms/bankConnectionUpdate") == 0
    for _ in range(4):  # the budget is whole
        await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
