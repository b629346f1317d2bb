"""An offline sandbox of finAPI Access and Everifin (Keycloak + BankConnect, Paygate).

It behaves like both providers closely enough that code which works against it works against
them, and runs three ways:

* ``aiofinaccess sandbox`` on the command line (prints its base URL when ready);
* ``async with run_sandbox() as sandbox:`` in tests and scripts (free port);
* the ``sandbox`` pytest fixture from :mod:`aiofinaccess.integrations.testing`.

The sandbox shares no code with the SDK's client side, so the SDK cannot pass its tests by
agreeing with itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
from aiohttp import web

from .app import SERVICES_KEY, build_app
from .login import LoginFailed, headless_login, headless_payment, headless_web_form
from .state import AFTER_COMMIT_KINDS, FAULT_KINDS, Faults, SandboxConfig, SandboxState

__all__ = [
    "AFTER_COMMIT_KINDS",
    "FAULT_KINDS",
    "Faults",
    "LoginFailed",
    "Sandbox",
    "SandboxConfig",
    "headless_login",
    "headless_payment",
    "headless_web_form",
    "run_sandbox",
]


@attrs.define
class Sandbox:
    """A running sandbox: where it listens, and handles to inspect and steer it."""

    base_url: str
    state: SandboxState
    app: web.Application = attrs.field(repr=False)
    runner: web.AppRunner | None = attrs.field(default=None, repr=False)

    @property
    def open_connections(self) -> int:
        """Client connections the sandbox holds open (a killed client's close once read)."""
        server = self.runner.server if self.runner is not None else None
        return 0 if server is None else len(server.connections)

    @property
    def config(self) -> SandboxConfig:
        """The live configuration (changes take effect at once)."""
        return self.state.config

    @property
    def idp_url(self) -> str:
        """Everifin IdP base, with Keycloak's legacy ``/auth`` prefix."""
        return self.base_url + "/auth"

    @property
    def api_url(self) -> str:
        """BankConnect API host (paths under ``/v1``)."""
        return self.base_url

    @property
    def paygate_url(self) -> str:
        """Everifin Paygate's host (paths under ``/api/v1`` and ``/api/v2``)."""
        return self.base_url + "/paygate"

    @property
    def issuer(self) -> str:
        """The realm's issuer."""
        return f"{self.idp_url}/realms/{self.state.config.realm}"

    def stats(self) -> dict[str, Any]:
        """The counters of ``/_sandbox/stats``."""
        return self.state.stats()

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward: tokens and sessions age without sleeping."""
        self.state.clock.advance(seconds)

    def set_faults(self, **settings: Any) -> None:
        """Replace the fault settings (see :class:`Faults`)."""
        self.state.config.faults = Faults(**settings)

    def service(self, name: str) -> Any:
        """``"finapi"``, ``"finapi_data"``, ``"keycloak"``, ``"bankconnect"``, ``"webform"``,
        ``"tasks"``, ``"payments"``, ``"rules"`` or ``"everifin_payments"``: a service's state."""
        return self.app[SERVICES_KEY][name]


@asynccontextmanager
async def run_sandbox(
    config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Sandbox]:
    """Run the sandbox on ``host:port`` (a free port by default) until the block ends."""
    state = SandboxState(config or SandboxConfig())
    app = build_app(state)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield Sandbox(base_url=f"http://{shown}:{bound_port}", state=state, app=app, runner=runner)
    finally:
        await runner.cleanup()
