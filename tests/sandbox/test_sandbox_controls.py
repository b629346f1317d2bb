"""The sandbox's controls: faults, counters, run-time settings, its clock, and its CLI."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from aiofinaccess import ApiError, SessionManager, TransportError
from aiofinaccess.errors import TokenResponseError
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Faults, Sandbox, SandboxConfig


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_stats_endpoint_counts_grants_and_statuses(
    sandbox: Sandbox, sandbox_manager: SessionManager, http: aiohttp.ClientSession
) -> None:
    """GET /_sandbox/stats reports token requests by grant and API calls by status."""
    await sandbox_manager.access_token("finapi")
    async with http.get(sandbox.base_url + "/api/v2/users") as response:
        assert response.status == 401
    async with http.get(sandbox.base_url + "/_sandbox/stats") as response:
        stats = await response.json()
    assert stats["token_requests"] == {"finapi_client_credentials": 1}
    assert stats["api_calls"] == {"200": 1, "401": 1}
    assert stats["reuse_violations"] == 0
    assert stats["faults"]["rate"] == 0.0


async def test_every_fault_kind_surfaces_as_a_typed_error(sandbox: Sandbox) -> None:
    """Each injected failure reaches the SDK as a TransportError, ApiError or TokenResponseError."""
    expected = {
        "500": ApiError,
        "502": ApiError,
        "503": ApiError,
        "429": ApiError,
        "html": ApiError,
        "malformed": TokenResponseError,
        "drop": TransportError,
    }
    config = sandbox.config
    for kind, error_type in expected.items():
        sandbox.set_faults(rate=1.0, kinds=(kind,), scope="token", retry_after=7)
        async with SessionManager() as manager:
            provider, credentials = sandbox_providers(sandbox)[0]
            manager.register(provider, credentials)
            with pytest.raises(error_type) as info:
                await manager.access_token("finapi")
        if kind in ("429", "503"):
            assert isinstance(info.value, ApiError)
            assert info.value.retry_after == 7.0
    # Every kind was injected; the retryable ones more than once (retries inside a renewal).
    assert set(sandbox.stats()["faults_injected"]) == set(expected)
    assert config.faults.rate == 1.0


async def test_fault_rate_and_scope(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    """A 30 % rate on the API fails about 30 % of API calls and none of the control routes."""
    sandbox.set_faults(rate=0.3, kinds=("500", "503"), scope="api")
    statuses: Counter[int] = Counter()
    for _ in range(400):
        async with http.get(sandbox.base_url + "/v1/accounts") as response:
            statuses[response.status] += 1
        async with http.get(sandbox.base_url + "/_sandbox/stats") as response:
            assert response.status == 200
    failed = statuses[500] + statuses[503]
    assert 80 <= failed <= 160, statuses
    assert statuses[401] == 400 - failed


async def test_faults_and_settings_change_at_run_time(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    """POST /_sandbox/faults, /config and /clock; bad input is refused with 400."""
    async with http.post(
        sandbox.base_url + "/_sandbox/faults", json={"rate": 0.5, "kinds": ["503"], "latency": 0.01}
    ) as response:
        assert response.status == 200
    assert sandbox.config.faults == Faults(rate=0.5, kinds=("503",), latency=0.01)
    async with http.post(sandbox.base_url + "/_sandbox/faults", json={"rate": 2}) as response:
        assert response.status == 400
    async with http.post(
        sandbox.base_url + "/_sandbox/config", json={"keycloak_access_ttl": 2}
    ) as response:
        assert response.status == 200
    assert sandbox.config.keycloak_access_ttl == 2.0
    async with http.post(
        sandbox.base_url + "/_sandbox/config", json={"finapi_client_secret": "x"}
    ) as response:
        assert response.status == 400
    async with http.post(sandbox.base_url + "/_sandbox/clock", json={"advance": 90}) as response:
        assert (await response.json())["clock_offset"] == 90


async def test_request_ids_are_echoed(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    """Every answer carries X-Request-Id: ours if we sent one, finAPI-style otherwise."""
    async with http.get(
        sandbox.base_url + "/api/v2/users", headers={"X-Request-Id": "mine-1"}
    ) as response:
        assert response.headers["X-Request-Id"] == "mine-1"
    async with http.get(sandbox.base_url + "/api/v2/users") as response:
        assert response.headers["X-Request-Id"].startswith("selfgen-")


def test_bad_fault_settings_are_refused() -> None:
    """Faults validate at construction."""
    for bad in ({"rate": -0.1}, {"kinds": ("teapot",)}, {"scope": "everything"}, {"latency": -1}):
        with pytest.raises(ValueError, match=r"fault|latency"):
            Faults(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(everifin_users={"carol": "carol-pw"})])
async def test_the_fixture_takes_a_config(sandbox: Sandbox) -> None:
    """Overriding sandbox_config reaches the running sandbox."""
    assert sandbox.config.everifin_users == {"carol": "carol-pw"}


async def test_cli_prints_its_url_and_stops_on_sigterm() -> None:
    """`aiofinaccess sandbox` prints one line with its base URL and exits 0 on SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiofinaccess",
        "sandbox",
        "--keycloak-access-ttl",
        "5",
        "--fault-rate",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
    assert line.startswith("http://127.0.0.1:")
    async with (
        aiohttp.ClientSession() as session,
        session.get(line + "/_sandbox/stats") as response,
    ):
        assert response.status == 200
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_cli_refuses_bad_options() -> None:
    """A bad fault kind is a one-line error and exit 2."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiofinaccess",
        "sandbox",
        "--fault-kinds",
        "teapot",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"fault kinds" in stderr
