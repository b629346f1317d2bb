"""pytest fixtures for apps built on aiofinaccess: the offline sandbox, ready to use.

Enable them in a ``conftest.py``::

    pytest_plugins = ["aiofinaccess.testing"]

and use them in async tests (pytest-asyncio)::

    async def test_connect(sandbox, sandbox_manager):
        token = await sandbox_manager.access_token("finapi")

Override ``sandbox_config`` to change lifetimes, users or faults for a module or a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ..core.tokens import ClientCredentials
from ..oauth.presets import Everifin, FinApi
from ..oauth.providers import Provider
from ..sandbox import Sandbox, SandboxConfig, run_sandbox
from ..session.manager import SessionManager

__all__ = [
    "paygate_provider",
    "sandbox",
    "sandbox_config",
    "sandbox_manager",
    "sandbox_providers",
]


def sandbox_providers(
    sandbox: Sandbox,
) -> list[tuple[Provider, ClientCredentials]]:
    """The finAPI and Everifin providers of a running sandbox, with their client credentials."""
    config = sandbox.config
    return [
        (
            FinApi.at(sandbox.base_url, api_version=config.finapi_version),
            ClientCredentials(config.finapi_client_id, config.finapi_client_secret),
        ),
        (
            Everifin.at(sandbox.idp_url, sandbox.api_url, realm=config.realm),
            ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
        ),
    ]


def paygate_provider(sandbox: Sandbox) -> tuple[Provider, ClientCredentials]:
    """The Everifin Paygate provider of a running sandbox (merchant API), with its client
    credentials."""
    config = sandbox.config
    return (
        Everifin.paygate_at(sandbox.idp_url, sandbox.paygate_url, realm=config.paygate_realm),
        ClientCredentials(config.paygate_client_id, config.paygate_client_secret),
    )


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """The sandbox's settings; override this fixture to change them."""
    return SandboxConfig()


@pytest_asyncio.fixture
async def sandbox(sandbox_config: SandboxConfig) -> AsyncIterator[Sandbox]:
    """A sandbox running on a free loopback port for the duration of one test."""
    async with run_sandbox(sandbox_config) as running:
        yield running


@pytest_asyncio.fixture
async def sandbox_manager(sandbox: Sandbox) -> AsyncIterator[SessionManager]:
    """A session manager with the sandbox's ``finapi`` and ``everifin`` providers registered."""
    async with SessionManager() as manager:
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        yield manager
