"""Providers, clients and token sets the unit tests share, and what a mocked token endpoint saw.

Imported by ``tests/conftest.py`` (for its fixtures) and by any test that needs them; tests never
import from ``conftest`` itself (pytest owns that module).
"""

from __future__ import annotations

from typing import Any

from aioresponses import aioresponses
from yarl import URL

from aiofinaccess import ClientCredentials, Everifin, FinApi, Provider, TokenSet
from tests.support.fakes import FakeClock

FINAPI = FinApi.sandbox()
EVERIFIN = Everifin.stage()
FINAPI_CLIENT = ClientCredentials("finapi-client", "finapi-client-secret-123")
EVERIFIN_CLIENT = ClientCredentials("everifin-client", "everifin-client-secret-456")


def token_body(
    access: str = "AT-1", refresh: str | None = "RT-1", expires_in: int = 300, **extra: object
) -> dict[str, object]:
    """A token endpoint's JSON answer."""
    body: dict[str, object] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    body.update(extra)
    return body


def token_url(provider: Provider) -> str:
    return str(provider.token_url)


def expired_set(clock: FakeClock, access: str = "AT-0", refresh: str | None = "RT-0") -> TokenSet:
    """A token set that expired 100 s ago on ``clock``."""
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        issued_at=clock.wall() - 400,
        expires_at=clock.wall() - 100,
    )


def token_requests(mocked: aioresponses, url: str) -> list[Any]:
    """The POSTs the mocked endpoint at ``url`` received."""
    return mocked.requests.get(("POST", URL(url)), [])
