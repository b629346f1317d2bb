"""OpenTelemetry metrics and spans for a session manager (extra ``otel``: the API only).

>>> telemetry = Telemetry()  # the global meter and tracer providers  # doctest: +SKIP
>>> manager = SessionManager(trace_configs=[telemetry.trace_config])  # doctest: +SKIP
>>> telemetry.instrument(manager)  # doctest: +SKIP

The app picks the SDK and exporters (without one every instrument is a no-op). Metrics count
token requests, renewals, rotations and failures, the refresh lateness and the sets by state;
spans cover each token exchange and API call, never with a token, query or body, and with the
app's user id only when ``record_user_id=True``. docs/guides/observability.md lists them all.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from ..session import events, hub
from ..session.manager import SessionManager

__all__ = ["Telemetry"]

_SCOPE = "aiofinaccess"
_STATS = list(hub.ManagerStats().as_dict())


def _outcome(status: int) -> str:
    if status < 400:
        return "success"
    return "rejected" if status < 500 else "server_error"


class Telemetry:
    """Metrics and spans for one or more session managers.

    Args:
        meter_provider: Where metrics go (default: the global one).
        tracer_provider: Where spans go (default: the global one).
        record_user_id: Put the app's user id on API call spans as ``enduser.id``. Off by
            default: user ids are personal data.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        record_user_id: bool = False,
    ) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(_SCOPE)
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(_SCOPE)
        self._record_user_id = record_user_id
        self._managers: list[SessionManager] = []
        self._token_requests = meter.create_counter(
            "aiofinaccess.token.requests", description="Token endpoint exchanges"
        )
        self._renewals = meter.create_counter(
            "aiofinaccess.renewals", description="Token sets renewed and stored"
        )
        self._rotations = meter.create_counter(
            "aiofinaccess.rotations", description="Renewals that brought a new refresh token"
        )
        self._failures = meter.create_counter(
            "aiofinaccess.failures", description="Failed renewals, dead grants, lost writes"
        )
        self._lateness = meter.create_histogram(
            "aiofinaccess.refresh.lateness",
            unit="s",
            description="From a set turning stale to its successor being stored",
        )
        meter.create_observable_gauge(
            "aiofinaccess.token_sets",
            callbacks=[self._observe_states],
            description="Token sets held by this process, by state",
        )
        for name in _STATS:
            meter.create_observable_counter(
                f"aiofinaccess.manager.{name}", callbacks=[self._stats_callback(name)]
            )
        self.trace_config = self._build_trace_config()
        """Give it to the session the manager sends on: ``SessionManager(trace_configs=...)``
        or ``aiohttp.ClientSession(trace_configs=...)``."""

    def __repr__(self) -> str:
        return f"Telemetry(managers={len(self._managers)})"

    def instrument(self, manager: SessionManager) -> SessionManager:
        """Count ``manager``'s events and observe its counters and token-set states."""
        self._managers.append(manager)
        manager.subscribe(self._on_event)
        return manager

    # -- metrics from events and counters --------------------------------------------------------

    def _on_event(self, event: events.ManagerEvent) -> None:
        provider = {"provider": event.provider}
        if isinstance(event, events.Refreshed):
            self._renewals.add(1, {**provider, "grant": event.grant, "reason": event.reason})
            if event.late_by is not None:
                self._lateness.record(event.late_by, provider)
        elif isinstance(event, events.Rotated):
            self._rotations.add(1, provider)
        elif isinstance(event, events.RefreshFailed):
            self._failures.add(1, {**provider, "kind": "refresh_failed", "error": event.error})
        elif isinstance(event, events.GrantLost):
            self._failures.add(1, {**provider, "kind": "reauth_required", "error": event.reason})
        elif isinstance(event, events.WriteAbandoned):
            self._failures.add(1, {**provider, "kind": "write_abandoned", "error": "store"})

    def _observe_states(self, options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[str, int] = {}
        for manager in self._managers:
            for state, count in manager.state_counts().items():
                totals[state.value] = totals.get(state.value, 0) + count
        return [Observation(count, {"state": state}) for state, count in totals.items()]

    def _stats_callback(self, name: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(sum(getattr(m.stats, name) for m in self._managers))]

        return observe

    # -- spans from the session's trace config ---------------------------------------------------

    def _build_trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._request_start)
        config.on_request_end.append(self._request_end)
        config.on_request_exception.append(self._request_exception)
        return config

    def _labels(self, context: types.SimpleNamespace) -> Mapping[str, str] | None:
        labels = context.trace_request_ctx
        return labels if isinstance(labels, Mapping) and "provider" in labels else None

    async def _request_start(
        self,
        session: aiohttp.ClientSession,
        context: types.SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        labels = self._labels(context)
        if labels is None:
            return  # not one of ours
        attributes: dict[str, str | int] = {
            "aiofinaccess.provider": labels["provider"],
            "http.request.method": params.method,
            "server.address": params.url.host or "",
        }
        if params.url.port is not None:
            attributes["server.port"] = params.url.port
        if "grant" in labels:
            attributes["aiofinaccess.grant"] = labels["grant"]
            name = f"token {labels['grant']}"
        else:
            attributes["aiofinaccess.endpoint"] = labels.get("endpoint", "")
            name = labels.get("endpoint", params.method)
        if self._record_user_id and "subject" in labels:
            attributes["enduser.id"] = labels["subject"]
        context.aiofinaccess_span = self._tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes
        )

    async def _request_end(
        self,
        session: aiohttp.ClientSession,
        context: types.SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        status = params.response.status
        self._finish(context, _outcome(status), status=status)

    async def _request_exception(
        self,
        session: aiohttp.ClientSession,
        context: types.SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        # The type only: an exception's text may quote a URL, query and all.
        self._finish(context, "transport_error", error=type(params.exception).__name__)

    def _finish(
        self,
        context: types.SimpleNamespace,
        outcome: str,
        *,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        labels = self._labels(context)
        span: Span | None = getattr(context, "aiofinaccess_span", None)
        if labels is None or span is None:
            return
        if "grant" in labels:
            self._token_requests.add(
                1, {"provider": labels["provider"], "grant": labels["grant"], "outcome": outcome}
            )
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if outcome != "success":
            span.set_attribute("error.type", error or str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()
