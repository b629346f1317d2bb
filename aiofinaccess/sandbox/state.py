"""The sandbox's settings, clock, randomness and counters, shared by every emulated service.

Nothing here imports the SDK's client side: a parsing bug in the SDK must not be mirrored by
the server it is tested against.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any, Literal

import attrs

__all__ = [
    "AFTER_COMMIT_KINDS",
    "FAULT_KINDS",
    "CallbackFaults",
    "Exchange",
    "Faults",
    "SandboxClock",
    "SandboxConfig",
    "SandboxState",
]

FAULT_KINDS = ("500", "502", "503", "drop", "malformed", "html", "429", "timeout")
#: Faults after the request was processed (a payment created, the answer lost); chosen
#: explicitly, never among the defaults.
AFTER_COMMIT_KINDS = ("500_after_commit", "drop_after_commit")
FaultScope = Literal["token", "api", "all"]


@attrs.define
class Faults:
    """Fault injection, changeable at run time (``POST /_sandbox/faults``).

    Args:
        rate: Share of requests in ``scope`` that fail, 0 to 1.
        kinds: Which failures to draw from: ``500``, ``502``, ``503`` (error statuses),
            ``drop`` (connection closed without an answer), ``malformed`` (truncated JSON
            with status 200), ``html`` (an HTML error page with status 502), ``429`` (with
            ``Retry-After``), ``timeout`` (no answer for ``timeout_delay`` seconds, then the
            connection is closed; the request is never processed); and, only when named,
            ``500_after_commit`` and ``drop_after_commit`` (the request is processed, then
            a 500 comes back or the connection is closed: a payment exists, its answer is
            lost).
        scope: ``token`` (token, revoke, logout endpoints), ``api`` (everything else), ``all``.
        latency: Seconds added to every request in scope.
        jitter: Up to this many seconds more, drawn per request: later requests can
            overtake earlier ones (a listing can run before a slow creation lands).
        retry_after: Seconds sent in ``Retry-After`` with 429 and 503.
        burst: The next ``burst`` requests in scope fail for sure (kinds in turn), before
            ``rate`` applies: a deterministic failure for tests.
        methods: Only requests with these methods are in scope (empty: every method), e.g.
            ``("POST",)`` to fault what creates payments and leave the listings alone.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    scope: FaultScope = "all"
    latency: float = 0.0
    jitter: float = 0.0
    retry_after: float = 1.0
    burst: int = 0
    timeout_delay: float = 10.0
    methods: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.burst < 0:
            raise ValueError("fault burst must be >= 0")
        if not 0 <= self.rate <= 1:
            raise ValueError("fault rate must be between 0 and 1")
        unknown = set(self.kinds) - set(FAULT_KINDS) - set(AFTER_COMMIT_KINDS)
        if unknown or not self.kinds:
            known = FAULT_KINDS + AFTER_COMMIT_KINDS
            raise ValueError(f"fault kinds must be a non-empty subset of {known}")
        if self.scope not in ("token", "api", "all"):
            raise ValueError("fault scope must be token, api or all")
        if min(self.latency, self.jitter, self.retry_after, self.timeout_delay) < 0:
            raise ValueError("latency, jitter, retry_after and timeout_delay must be >= 0")


@attrs.define
class CallbackFaults:
    """How the sandbox delivers its callbacks to the app (Web Form, task, notification, user
    synchronization): finAPI documents no retry policy, so this is a fault model.

    Args:
        attempts: Deliveries of one callback until the app answers 2xx (1: best effort).
        lost_answers: The app's first ``lost_answers`` answers to each callback are taken as
            lost (it processed the callback; the sandbox sends it again), within ``attempts``.
        duplicates: Extra copies of each callback sent after the app accepted it.
    """

    attempts: int = 1
    lost_answers: int = 0
    duplicates: int = 0

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1 or min(self.lost_answers, self.duplicates) < 0:
            raise ValueError("callback attempts must be >= 1, lost answers and duplicates >= 0")


@attrs.define
class SandboxConfig:
    """Everything the sandbox can be told at start. Durations are seconds; ``0`` TTL = never.

    The credentials are the sandbox's own, printed on start; they guard nothing real.
    """

    finapi_client_id: str = "finapi-sandbox-client"
    finapi_client_secret: str = "finapi-sandbox-secret"
    finapi_version: Literal["v1", "v2"] = "v2"
    finapi_client_token_ttl: float = 3600.0
    finapi_user_token_ttl: float = 3600.0
    finapi_refresh_token_ttl: float = 0.0
    finapi_auto_verify_users: bool = True
    finapi_max_login_attempts: int = 5
    #: What a completed Web Form import creates, and what each completed update adds.
    finapi_accounts_per_connection: int = 2
    finapi_transactions_per_account: int = 60
    finapi_transactions_per_update: int = 5
    #: How long a consent the user gives (an import, a completed update form) lasts.
    finapi_consent_days: float = 180.0
    #: Real seconds a background update task runs before its outcome.
    finapi_task_seconds: float = 0.05

    everifin_client_id: str = "everifin-sandbox-client"
    everifin_client_secret: str = "everifin-sandbox-secret"
    realm: str = "everifin_app"
    keycloak_access_ttl: float = 300.0
    #: Keycloak's "Refresh Token Max Reuse": extra uses allowed of the refresh token used last
    #: (0: none, Keycloak's default; Everifin's setting is not published).
    keycloak_refresh_max_reuse: int = 0
    sso_idle: float = 1800.0
    sso_max: float = 36000.0
    code_ttl: float = 60.0
    #: The Everifin client's valid redirect URIs, compared as Keycloak does: exactly, a trailing
    #: ``*`` matches by prefix, and a loopback URI matches on any port (RFC 8252). Loopback
    #: only by default, so an app's ``https://`` callback must be registered here, as at
    #: Everifin.
    everifin_redirect_uris: tuple[str, ...] = (
        "http://127.0.0.1/*",
        "http://localhost/*",
        "http://[::1]/*",
    )
    everifin_users: dict[str, str] = attrs.Factory(
        lambda: {"alice": "alice-password", "bob": "bob-password"}
    )

    #: Everifin Paygate (its own realm, ``client_credentials``) and its webhooks: where they
    #: go, their HMAC key, tries per event, the share delivered twice, shuffled batches, and
    #: whether deliveries wait for ``EverifinPaymentService.deliver`` (tests that reorder).
    paygate_realm: str = "everifin_paygate"
    paygate_client_id: str = "paygate-sandbox-client"
    paygate_client_secret: str = "paygate-sandbox-secret"
    paygate_webhook_url: str | None = None
    paygate_webhook_secret: str = "paygate-sandbox-webhook-secret"
    paygate_webhook_attempts: int = 5
    paygate_webhook_duplicates: float = 0.0
    paygate_webhook_reorder: bool = False
    paygate_webhook_hold: bool = False

    transactions_per_account: int = 120
    seed: int = 0
    faults: Faults = attrs.Factory(Faults)
    callbacks: CallbackFaults = attrs.Factory(CallbackFaults)
    #: finAPI's client configuration: where notification rules' notifications and user
    #: synchronization (``{"userId", "event": "DELETED"}``) go; ``None``: not sent.
    finapi_notification_url: str | None = None
    finapi_user_sync_url: str | None = None
    #: Keep every exchange in ``SandboxState.journal`` (bodies included: for tests only).
    record_requests: bool = False


class SandboxClock:
    """Wall-clock seconds that tests can move forward (``POST /_sandbox/clock``)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """Current sandbox time."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Jump ahead: tokens expire, sessions idle out, without anyone sleeping."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self.offset += seconds


@attrs.frozen
class Exchange:
    """One request and its answer, as the sandbox saw them (``record_requests``)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    content_type: str
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    response_content_type: str
    #: Every query parameter in order, repeated ones included (``query`` keeps one of each).
    query_pairs: tuple[tuple[str, str], ...] = ()


@attrs.define
class SandboxState:
    """Shared by the services of one sandbox."""

    config: SandboxConfig
    clock: SandboxClock = attrs.Factory(SandboxClock)
    counters: Counter[str] = attrs.Factory(Counter)
    rng: random.Random = attrs.field(init=False)
    journal: list[Exchange] = attrs.Factory(list)
    #: Requests being handled right now (a test waits for 0 before reading the state).
    in_flight: int = 0

    def __attrs_post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)  # noqa: S311  (test data, not cryptography)

    def count(self, name: str, amount: int = 1) -> None:
        """Bump a counter shown at ``/_sandbox/stats``."""
        self.counters[name] += amount

    def stats(self) -> dict[str, Any]:
        """Counters grouped by their prefix (``token_requests.password`` -> nested)."""
        grouped: dict[str, Any] = {}
        for name, value in sorted(self.counters.items()):
            group, _, leaf = name.partition(".")
            if leaf:
                grouped.setdefault(group, {})[leaf] = value
            else:
                grouped[group] = value
        for group in ("token_requests", "api_calls"):
            grouped.setdefault(group, {})
        grouped.setdefault("reuse_violations", 0)
        grouped.setdefault("sessions_killed", 0)
        return grouped
