"""Seeds the simulation's long run (beyond the CI budget) found, each pinned by a small test on
the virtual-time loop (tests/session/virtual.py): nothing sleeps for real, every instant is
exact."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import pytest

from aiofinaccess import Oidc, ReauthorizationRequired, SessionManager, StoreError, Timeouts
from aiofinaccess.core.tokens import TokenKey
from aiofinaccess.oauth.client import OAuthClient
from aiofinaccess.session.events import GrantLost
from aiofinaccess.stores import Versioned
from tests.session.virtual import (
    CLIENT,
    Keycloak,
    LeasedStore,
    LoopClock,
    _Session,
    manager,
    now,
    run,
)


def test_a_set_deleted_elsewhere_is_reported_once_not_at_every_call() -> None:
    """Seed 2250 (I12): another process found the user's grant dead and deleted the set; until
    the new login was stored, this process, which held the set, reported ``GrantLost``
    at every call (6 in 5 s), since it kept no trace of a key with nothing stored."""

    async def main() -> tuple[list[str], str]:
        store, idp = LeasedStore(), Keycloak(lifetime=10.0)
        events: list[GrantLost] = []
        async with manager(store, idp) as web, manager(store, idp) as worker:
            web.subscribe(lambda event: isinstance(event, GrantLost) and events.append(event))
            await worker.store_token_set("idp", "alice", idp.login("alice"))
            await web.access_token("idp", "alice")  # the web process holds the set
            await store.delete(TokenKey("idp", "alice"))  # the worker's dead grant, say
            await asyncio.sleep(10.0)  # the held access token expires
            reasons = []
            for _ in range(6):
                try:
                    await web.access_token("idp", "alice")
                except ReauthorizationRequired as exc:
                    reasons.append(exc.reason)
                await asyncio.sleep(0.5)
            await worker.store_token_set("idp", "alice", idp.login("alice"))
            adopted = await web.access_token("idp", "alice")
        assert reasons == ["no_token_set"] * 6
        return [event.reason for event in events], adopted

    reported, adopted = run(main)
    assert reported == ["no_token_set"], reported
    assert adopted.startswith("at-alice-")  # the new login, found with one store read


FIN = Oidc.endpoints(name="fin", token_url="https://fin.test/token", rotates_refresh_tokens=False)


@attrs.define
class FinApi:
    """finAPI's client tokens: the same token handed back until it expires or is revoked."""

    lifetime: float = 60.0
    latency: float = 0.01
    token: str | None = None
    issued: int = 0

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        assert form["grant_type"] == "client_credentials"
        if self.token is None:
            self.issued += 1
            self.token = f"ct-{self.issued}"
        return 200, {
            "access_token": self.token,
            "expires_in": self.lifetime,
            "token_type": "Bearer",
        }


class FlakyReads(LeasedStore):
    """A store whose next ``failing_gets`` reads fail."""

    failing_gets = 0

    async def get(self, key: TokenKey) -> Versioned | None:
        if self.failing_gets:
            self.failing_gets -= 1
            raise StoreError("the store blinked")
        return await super().get(key)


def test_a_401_on_a_reissued_client_token_is_renewed_at_once_after_a_failed_renewal() -> None:
    """Seed 2677 (I4): finAPI reissued the client token (not renewed again before it expires);
    a 401's renewal failed on the store and its retry was planned in the background, where
    it slept until the token's expiry. The next 401's renewal joined that sleeping job and
    waited 24.6 s (here: till the expiry, 50 s)."""

    async def main() -> tuple[str, float]:
        store, api = FlakyReads(), FinApi()
        client = OAuthClient(FIN, CLIENT, _Session(api), clock=LoopClock(), timeout=2.0)  # type: ignore[arg-type]
        async with SessionManager(
            store=store, clock=LoopClock(), timeouts=Timeouts(token=2.0)
        ) as m:
            m.register(FIN, CLIENT)
            m._oauth_clients["fin"] = client
            first = await m.access_token("fin")
            await m.refresh("fin")  # the same token again: a reissue
            api.token = None  # the API revoked it: the next request gets a new one
            store.failing_gets = 1
            with pytest.raises(StoreError):  # this caller sees it; a retry is planned
                await m.renew_after_rejection("fin", None, first)
            await asyncio.sleep(10.0)  # the retry has started
            asked = now()
            async with asyncio.timeout(120.0):
                renewed = await m.renew_after_rejection("fin", None, first)
            return renewed, now() - asked

    renewed, took = run(main)
    assert renewed == "ct-2"
    # A renewal after a 401 waits for no reissue's expiry: a token exchange at most.
    assert took <= 2.0, took
