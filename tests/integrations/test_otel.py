"""OpenTelemetry metrics and spans, read from the SDK's in-memory exporters, against the sandbox:
a connection, a refresh with rotation, an API call, a failed renewal and a re-authorization."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiofinaccess import ApiError, ReauthorizationRequired, Schedule, SessionManager
from aiofinaccess.everifin import BankConnect
from aiofinaccess.integrations.otel import Telemetry
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox, headless_login
from tests.support.fakes import FakeClock

USER = "alice"
#: What the sandbox issues (tokens, codes): none may appear in any attribute or span name.
ISSUED = re.compile(r"(?:finapi_at|finapi_rt|kc_at|kc_rt|kc_idt|code)_[A-Za-z0-9_-]{32}")


class Exported:
    """The SDK's in-memory span exporter and metric reader behind one :class:`Telemetry`."""

    def __init__(self, *, record_user_id: bool = False) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.telemetry = Telemetry(
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            tracer_provider=tracer_provider,
            record_user_id=record_user_id,
        )

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, value) of every data point of metric ``name`` (histograms: count)."""
        found = []
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            found.append((dict(point.attributes or {}), value or point.count))
        return found

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@pytest.fixture
async def instrumented(
    sandbox: Sandbox, clock: FakeClock
) -> AsyncIterator[tuple[SessionManager, Exported]]:
    exported = Exported()
    manager = SessionManager(
        clock=clock,
        schedule=Schedule(enabled=False),
        trace_configs=[exported.telemetry.trace_config],
    )
    async with exported.telemetry.instrument(manager):
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        await connect(manager)
        yield manager, exported


async def connect(manager: SessionManager) -> None:
    request = manager.authorization_request("everifin", "http://127.0.0.1/callback")
    async with aiohttp.ClientSession() as browser:
        callback = await headless_login(browser, request.url, USER, "alice-password")
    await manager.complete_authorization("everifin", USER, str(callback), request)


async def test_metrics_and_spans_after_refresh_rotation_failure_and_reauthorization(
    sandbox: Sandbox, clock: FakeClock, instrumented: tuple[SessionManager, Exported]
) -> None:
    manager, exported = instrumented
    issued = [(await manager.token_set("everifin", USER))]
    # A refresh (Keycloak rotates the refresh token), then an API call.
    clock.advance(400)
    sandbox.advance(400)
    await manager.access_token("everifin", USER)
    issued.append(await manager.token_set("everifin", USER))
    assert len(await BankConnect(manager).accounts(USER)) == 3
    # A failed renewal: the token endpoint answers 503 to every retry.
    clock.advance(400)
    sandbox.advance(400)
    sandbox.set_faults(kinds=("503",), scope="token", burst=20)
    with pytest.raises(ApiError):
        await manager.access_token("everifin", USER)
    sandbox.set_faults()
    # The session ends at the provider (SSO max) unbeknown to us: refused, re-authorization.
    clock.advance(400)
    sandbox.advance(40_000)
    with pytest.raises(ReauthorizationRequired):
        await manager.access_token("everifin", USER)

    requests = {
        (a["grant"], a["outcome"]): v for a, v in exported.points("aiofinaccess.token.requests")
    }
    assert requests[("authorization_code", "success")] == 1
    assert requests[("refresh_token", "success")] == 1
    assert requests[("refresh_token", "server_error")] == manager.stats.retries + 1
    assert requests[("refresh_token", "rejected")] == 1
    assert manager.stats.retries >= 1
    renewals = exported.points("aiofinaccess.renewals")
    assert renewals == [
        ({"provider": "everifin", "grant": "refresh_token", "reason": "on_demand"}, 1)
    ]
    assert exported.points("aiofinaccess.rotations") == [({"provider": "everifin"}, 1)]
    failures = {(a["kind"], a["error"]): v for a, v in exported.points("aiofinaccess.failures")}
    assert failures == {
        ("refresh_failed", "ApiError"): 1,
        ("reauth_required", "invalid_grant"): 1,
    }
    ((_attributes, late_count),) = exported.points("aiofinaccess.refresh.lateness")
    assert late_count == 1
    states = {a["state"]: v for a, v in exported.points("aiofinaccess.token_sets")}
    assert states.get("reauth_required") == 1
    (retries,) = exported.points("aiofinaccess.manager.retries")
    assert retries[1] == manager.stats.retries

    spans = exported.finished()
    names = [span.name for span in spans]
    assert names[0] == "token authorization_code"
    assert "GET /accounts" in names
    api = next(span for span in spans if span.name == "GET /accounts")
    assert api.attributes is not None
    assert api.attributes["http.response.status_code"] == 200
    assert api.attributes["aiofinaccess.provider"] == "everifin"
    assert "enduser.id" not in api.attributes
    refused = [s for s in spans if s.name == "token refresh_token" and not s.status.is_ok]
    assert {s.attributes["http.response.status_code"] for s in refused if s.attributes} == {
        400,
        503,
    }
    assert_no_secret(exported, [t for ts in issued for t in secrets_of(ts)])


def secrets_of(token_set: Any) -> list[str]:
    found = [token_set.access_token.reveal()]
    if token_set.refresh_token is not None:
        found.append(token_set.refresh_token.reveal())
    return found


def assert_no_secret(exported: Exported, tokens: list[str]) -> None:
    """No token, code or user id in any span name, span attribute or metric attribute."""
    texts: list[str] = []
    for span in exported.finished():
        texts.append(span.name)
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        texts.extend(str(event.attributes) for event in span.events)
    data = exported.reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    texts.extend(f"{k}={v}" for k, v in (point.attributes or {}).items())
    assert len(texts) > 20
    assert not [text for text in texts if ISSUED.search(text)]
    assert not [text for text in texts if any(token in text for token in tokens)]
    assert not [text for text in texts if USER in text]


async def test_the_user_id_is_recorded_only_when_the_app_opts_in(sandbox: Sandbox) -> None:
    exported = Exported(record_user_id=True)
    manager = SessionManager(trace_configs=[exported.telemetry.trace_config])
    async with exported.telemetry.instrument(manager):
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        await connect(manager)
        await BankConnect(manager).accounts(USER)
        token = await manager.access_token("everifin", USER)
    api = next(span for span in exported.finished() if span.name == "GET /accounts")
    assert api.attributes is not None
    assert api.attributes["enduser.id"] == USER
    texts = [f"{k}={v}" for s in exported.finished() for k, v in (s.attributes or {}).items()]
    assert not [text for text in texts if token in text or ISSUED.search(text)]


def test_import_aiofinaccess_imports_no_optional_library() -> None:
    """The integrations are lazy: ``import aiofinaccess`` loads none of their libraries."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import sys, aiofinaccess, aiofinaccess.integrations;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'httpx', 'opentelemetry', 'starlette', 'fastapi'}))"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
