"""Logout and revocation delete the session they ended, not a login stored meanwhile by another
process (simulation seed 1993: a logout's delete, held back by a pause, landed after a new
login and lost it)."""

from __future__ import annotations

from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from aiofinaccess import Schedule, SessionManager, TokenKey, TokenSet
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock
from tests.support.tokens import EVERIFIN, EVERIFIN_CLIENT, expired_set

USER = "user-1"


def fresh_set(clock: FakeClock, access: str, refresh: str) -> TokenSet:
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        issued_at=clock.wall(),
        expires_at=clock.wall() + 300,
    )


@pytest.mark.parametrize("ending", ["logout", "revoke"])
async def test_a_login_stored_while_the_grant_ends_survives(
    ending: str, manager: SessionManager, mocked: aioresponses, clock: FakeClock, store: MemoryStore
) -> None:
    await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
    async with SessionManager(
        store=store, clock=clock, schedule=Schedule(enabled=False)
    ) as elsewhere:
        elsewhere.register(EVERIFIN, EVERIFIN_CLIENT)

        async def provider_ends_it(url: URL, **kwargs: Any) -> CallbackResult:
            # The user logs in again through another process before this one deletes.
            await elsewhere.store_token_set(EVERIFIN, USER, fresh_set(clock, "AT-new", "RT-new"))
            return CallbackResult(status=200)

        url = EVERIFIN.logout_url if ending == "logout" else EVERIFIN.revocation_url
        mocked.post(str(url), callback=provider_ends_it)
        await getattr(manager, ending)(EVERIFIN, USER)
        stored = await store.get(TokenKey(EVERIFIN.name, USER))
        assert stored is not None
        assert stored.token_set.access_token.reveal() == "AT-new"
        assert await manager.access_token(EVERIFIN, USER) == "AT-new"
