"""An Everifin user with scope ``pis`` in a manager, and the Paygate provider, on a sandbox."""

from __future__ import annotations

import time
from typing import Any

from aiofinaccess import SessionManager
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.integrations.testing import paygate_provider
from aiofinaccess.sandbox import Sandbox

SK_IBAN = "SK3112000000198742637541"


async def store_seeded(manager: SessionManager, user: str, body: dict[str, Any]) -> None:
    """Keep a seeded Keycloak session's token answer as ``user``'s tokens."""
    token_set = parse_token_response(body, sent=Anchor(time.time(), time.monotonic()))
    await manager.store_token_set("everifin", user, token_set)


async def pis_user(manager: SessionManager, sandbox: Sandbox, user: str) -> None:
    """Log ``user`` in (scope ``ais pis``) without the login page; keep the tokens."""
    await store_seeded(
        manager, user, sandbox.service("keycloak").seed_session(user, scope="ais pis")
    )


def with_paygate(manager: SessionManager, sandbox: Sandbox) -> None:
    """Register the sandbox's Paygate provider."""
    manager.register(*paygate_provider(sandbox))
