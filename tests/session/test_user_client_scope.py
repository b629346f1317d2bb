"""A user's token set belongs to the client it was issued to (issue 22, finding 2, users).

Two apps register the provider name "everifin" with different clients on one store. Keys of
user sets name no client, so a process of client X can find a set of client Y's user; sent
with X's credentials, Keycloak refuses it (``invalid_grant`` "Token client and authorized
client don't match") and the SDK reports the user lost. The sandbox knows client Y (its one
Everifin client) and refuses X (``invalid_client``): X must send nothing for Y's set, neither
on demand nor from its refresh duty, and Y's own worker still renews it in time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aiofinaccess import ClientCredentials, Duty, RefreshPolicy, Schedule, SessionManager, TokenKey
from aiofinaccess.core.errors import AiofinaccessError, StoreError
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.stores.codec import JsonCodec
from tests.session.duty_support import ClaimsSQLite, claims_made
from tests.session.test_duty import (
    LIFETIME,
    everifin,
    refreshes,
    sandbox_config,  # noqa: F401  (a fixture used by name)
    seeded,
)
from tests.support.polling import until

CLIENT_X = ClientCredentials("client-x", "client-x-secret")
ALICE = TokenKey("everifin", "alice")
KEY = "everifin\x00alice"
#: Due 20 s before expiry: a set 15 s from expiry is due, with room for Y's worker to start.
POLICY = RefreshPolicy(lead_fraction=0.5, min_lead=20.0, max_lead=20.0, expiry_margin=0.5)


def app(store: object, sandbox: Sandbox, client: ClientCredentials | None, **options: object):  # type: ignore[no-untyped-def]
    """A manager of client ``client`` (the sandbox's own Everifin client when ``None``)."""
    options.setdefault("schedule", Schedule(jitter=0.0))
    built = SessionManager(store=store, policy=POLICY, **options)  # type: ignore[arg-type]
    provider, credentials = everifin(sandbox)
    built.register(provider, client or credentials)  # type: ignore[arg-type]
    return built


async def _outcome(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except AiofinaccessError as exc:
        return type(exc).__name__
    return "no error"


async def test_a_process_never_uses_another_clients_user_set_on_demand(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Client Y stored alice's and bob's sets; client X asks for alice's token, renews bob's and
    logs bob out: a typed error each time, no request, and Y's sets are left as they are."""
    path = tmp_path / "shared.db"
    async with app(ClaimsSQLite(path), sandbox, None, duty=Duty(enabled=False)) as manager_y:
        await manager_y.store_token_set("everifin", "alice", seeded(sandbox, "alice", age=0.0))
        await manager_y.store_token_set(
            "everifin", "bob", seeded(sandbox, "bob", age=LIFETIME - 15.0)
        )
    store = ClaimsSQLite(path)
    try:
        before = {user: await store.get(TokenKey("everifin", user)) for user in ("alice", "bob")}
        async with app(
            ClaimsSQLite(path), sandbox, CLIENT_X, duty=Duty(enabled=False)
        ) as manager_x:
            fresh = await _outcome(manager_x.access_token("everifin", "alice"))
            due = await _outcome(manager_x.refresh("everifin", "bob"))
            logout = await _outcome(manager_x.logout("everifin", "bob"))
            sent = manager_x.stats.token_requests
        assert (fresh, due, logout, sent) == (
            "ClientMismatchError",
            "ClientMismatchError",
            "ClientMismatchError",
            0,
        ), f"client X used, renewed or logged out client Y's user sets: {fresh, due, logout, sent}"
        for user, found in before.items():
            now = await store.get(TokenKey("everifin", user))
            assert found is not None and now is not None  # noqa: PT018
            assert now.version == found.version
    finally:
        await store.aclose()


async def test_a_worker_never_renews_another_clients_user_set(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Worker X claims from the store before Y's worker runs: it must neither send for Y's due
    set nor hold it past its due time; Y's worker renews it before its token expires."""
    path = tmp_path / "shared.db"
    async with app(ClaimsSQLite(path), sandbox, None, duty=Duty(enabled=False)) as manager_y:
        await manager_y.store_token_set(
            "everifin", "alice", seeded(sandbox, "alice", age=LIFETIME - 15.0)
        )
    store = ClaimsSQLite(path)
    try:
        await store.reschedule(ALICE, time.time() - 1.0)  # due now, whatever the policy drew
        found = await store.get(ALICE)
        assert found is not None
        expires_at = found.token_set.expires_at
        assert expires_at is not None
        refreshes_before = refreshes(sandbox)
        options = {"duty": Duty(enabled=True, poll=0.1, gather=0.05)}
        claims = ClaimsSQLite(path)
        async with app(claims, sandbox, CLIENT_X, **options) as worker_x:
            await until(claims_made(claims, 5), 10.0)
            await worker_x.wait_idle()
            assert worker_x.stats.token_requests == 0, "worker X sent client Y's refresh token"
            async with app(ClaimsSQLite(path), sandbox, None, **options) as worker_y:

                async def renewed() -> bool:
                    now = await store.get(ALICE)
                    return now is not None and now.version != found.version

                await until(renewed, 14.0)
                renewed_at = time.time()
                await worker_y.wait_idle()
            assert worker_x.stats.token_requests == 0
            assert worker_x.stats.duty_other_client >= 1  # claimed, and given back
        assert renewed_at < expires_at, "Y's worker renewed alice's set only after it expired"
        assert refreshes(sandbox) - refreshes_before == 1
        assert sandbox.stats()["sessions_killed"] == 0
    finally:
        await store.aclose()


async def test_a_set_stored_before_stamps_is_served_and_then_stamped(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """An old record names no client: whoever serves the provider renews it (as before), and
    the renewed set records that client."""
    store = ClaimsSQLite(tmp_path / "old.db")
    await store.put(ALICE, seeded(sandbox, "alice", age=LIFETIME - 15.0), expected_version=None)
    async with app(store, sandbox, None, duty=Duty(enabled=False)) as manager_y:
        renewed = await manager_y.refresh("everifin", "alice")
        assert manager_y.stats.token_requests == 1
    _, credentials = everifin(sandbox)
    assert isinstance(credentials, ClientCredentials)
    assert renewed.client_id == credentials.client_id


@pytest.mark.parametrize("client_id", [12345, "", ["a"]])
def test_a_mistyped_client_id_is_a_store_error(client_id: object) -> None:
    codec = JsonCodec()

    def record(**fields: object) -> bytes:
        body = {"access_token": "AT", "refresh_token": "RT", **fields}
        return json.dumps({"kind": "token_set", "key": KEY, "token_set": body}).encode()

    assert codec.decode(record(), kind="token_set", key=KEY).client_id is None  # an old record
    assert codec.decode(record(client_id="y"), kind="token_set", key=KEY).client_id == "y"
    with pytest.raises(StoreError):
        codec.decode(record(client_id=client_id), kind="token_set", key=KEY)
