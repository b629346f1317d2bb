"""finAPI users against the sandbox's finAPI: every call, its token, its typed errors."""

from __future__ import annotations

import pytest

from aiofinaccess import ReauthorizationRequired, SessionManager
from aiofinaccess.api.pipeline import EndUser
from aiofinaccess.core.errors import (
    EntityExistsError,
    NotFoundError,
    UnprocessableEntityError,
    ValidationError,
)
from aiofinaccess.finapi import NewUser, UserChanges, Users
from aiofinaccess.sandbox import Sandbox, SandboxConfig

PASSWORD = "alice-password-1"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(record_requests=True)


@pytest.fixture
def users(sandbox_manager: SessionManager) -> Users:
    return Users(sandbox_manager)


async def test_create_and_login_then_read_edit_delete(
    users: Users, sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """The seed's flow: create, get a managed session, use it; delete forgets the tokens."""
    created = await users.create_and_login(
        NewUser(id="alice", password=PASSWORD, email="a@example.com")
    )
    assert created.password is not None
    assert created.password.reveal() == PASSWORD
    me = await users.get("alice")
    assert (me.id, me.email, me.password) == ("alice", "a@example.com", None)
    edited = await users.edit(
        "alice", UserChanges(email="", phone="+421 900", is_auto_update_enabled=True)
    )
    assert (edited.email, edited.phone, edited.is_auto_update_enabled) == (None, "+421 900", True)
    await users.delete(
        "alice",
        end_user=EndUser(ip_address="203.0.113.7", user_agent="Mozilla/5.0", device_os="iOS"),
    )
    delete = next(e for e in sandbox.state.journal if e.method == "DELETE")
    assert delete.headers["PSU-IP-Address"] == "203.0.113.7"
    assert delete.headers["PSU-User-Agent"] == "Mozilla/5.0"
    assert delete.headers["PSU-Device-OS"] == "iOS"
    with pytest.raises(ReauthorizationRequired):
        await sandbox_manager.access_token("finapi", "alice")


async def test_random_id_and_password(users: Users) -> None:
    """finAPI draws both when none are given."""
    created = await users.create()
    assert created.id
    assert created.password is not None


async def test_taken_id_is_entity_exists(users: Users) -> None:
    """422 ENTITY_EXISTS, typed, with the request id we sent."""
    await users.create(NewUser(id="bob", password=PASSWORD))
    with pytest.raises(EntityExistsError) as info:
        await users.create(NewUser(id="BOB", password=PASSWORD))
    assert info.value.code == "ENTITY_EXISTS"
    assert info.value.request_id


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"id": "bad id"}, "id"),
        ({"id": "x" * 37}, "id"),
        ({"password": "short"}, "password"),
        ({"phone": ""}, "phone"),
    ],
)
def test_limits_are_checked_before_sending(fields: dict[str, str], name: str) -> None:
    """ValidationError names the field."""
    with pytest.raises(ValidationError, match=name):
        NewUser(**fields)  # type: ignore[arg-type]


async def test_nothing_is_sent_for_invalid_input(users: Users, sandbox: Sandbox) -> None:
    """A bad user id in a path parameter never leaves the process."""
    before = len(sandbox.state.journal)
    with pytest.raises(ValidationError):
        await users.verify("not a valid id")
    with pytest.raises(ValidationError):
        UserChanges()
    assert len(sandbox.state.journal) == before


@pytest.mark.parametrize(
    "sandbox_config", [SandboxConfig(finapi_auto_verify_users=False, record_requests=True)]
)
async def test_verification_and_unverified_deletion(users: Users) -> None:
    """Status, verify, already-verified, delete-unverified, not found."""
    await users.create(NewUser(id="carol", password=PASSWORD))
    await users.create(NewUser(id="dave", password=PASSWORD))
    assert await users.is_verified("carol") is False
    await users.verify("carol")
    assert await users.is_verified("carol") is True
    with pytest.raises(UnprocessableEntityError):
        await users.verify("carol")
    with pytest.raises(UnprocessableEntityError):
        await users.delete_unverified("carol")
    await users.delete_unverified("dave")
    with pytest.raises(NotFoundError):
        await users.is_verified("dave")


async def test_password_change(users: Users, sandbox_manager: SessionManager) -> None:
    """Request, execute, old tokens forgotten, new password works."""
    await users.create_and_login(NewUser(id="erin", password=PASSWORD))
    change = await users.request_password_change("erin")
    assert change.user_id == "erin"
    await users.execute_password_change("erin", "a-new-password", change.password_change_token)
    with pytest.raises(ReauthorizationRequired):
        await sandbox_manager.access_token("finapi", "erin")
    await sandbox_manager.login_with_password("finapi", "erin", "a-new-password")
    assert (await users.get("erin")).id == "erin"


async def test_the_right_token_kind_is_chosen(users: Users, sandbox: Sandbox) -> None:
    """Creating uses the client token, reading the user's (else the sandbox answers 403)."""
    await users.create_and_login(NewUser(id="frank", password=PASSWORD))
    await users.get("frank")
    statuses = {(e.method, e.path): e.status for e in sandbox.state.journal}
    assert statuses[("POST", "/api/v2/users")] == 201
    assert statuses[("GET", "/api/v2/users")] == 200
    assert 403 not in statuses.values()


async def test_a_user_without_tokens_needs_authorization(users: Users) -> None:
    """Reading a user the manager has no tokens for is ReauthorizationRequired, not a 403."""
    with pytest.raises(ReauthorizationRequired):
        await users.get("nobody")
