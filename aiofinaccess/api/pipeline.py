"""The request pipeline every resource module sends through.

Theory of operation
-------------------
A resource module declares its endpoints as :class:`Endpoint` records (method, path template
written once, which token it needs, which statuses mean success) and calls
:meth:`ApiClient.call`. For each call the pipeline:

1. builds the URL from the provider's ``api_url`` (or the web-form host) and the template;
2. asks the session manager for the bearer token the endpoint needs (the client's or the end
   user's) - only for a URL on one of the provider's API origins, and ``transport.send``
   never follows a redirect, so the token cannot reach another origin - and sends a fresh
   ``X-Request-Id`` plus the end user's context headers when the app gives them (finAPI
   ``PSU-*``; Everifin ``User-Agent`` and ``client-ip-address``);
3. on a 401 asks the manager once for a token other than the refused one (one shared renewal)
   and replays once;
4. retries with full-jitter exponential backoff: 429 (waiting ``Retry-After``) for any method,
   5xx and failures after sending only for idempotent methods, and failures before sending
   (refused connections) for every method;
5. turns any other status into the typed error for it, carrying the request id.

Nothing here knows a provider's paths or models: those live in ``users``, ``bankconnect`` and
``webform``.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

import attrs
from yarl import URL

from ..core.errors import (
    ApiError,
    ConfigurationError,
    TransportError,
    UsageError,
    ValidationError,
)
from ..core.lifecycle import RetryPolicy
from ..core.tokens import Secret
from ..oauth.error_bodies import error_from_response
from ..oauth.providers import origin_of
from ..oauth.transport import (
    DEFAULT_MAX_BODY,
    HttpRequest,
    HttpResponse,
    Pairs,
    new_request_id,
    send,
)
from ..session.retrying import Retrier

if TYPE_CHECKING:
    from ..session.manager import SessionManager

__all__ = ["ApiClient", "EndUser", "Endpoint", "everifin_context", "finapi_context"]

Auth = Literal["client", "user", "none"]
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@attrs.frozen(slots=True)
class Endpoint:
    """One API operation, declared once.

    Args:
        method: HTTP method.
        path: Path template relative to the API base, e.g. ``/users/verify/{user_id}``.
        auth: ``"client"`` (the client's token), ``"user"`` (the end user's) or ``"none"``.
        expect: Statuses that mean success.
    """

    method: str
    path: str
    auth: Auth = "user"
    expect: tuple[int, ...] = (200,)

    @property
    def idempotent(self) -> bool:
        """Whether replaying it after an ambiguous failure is safe (RFC 9110 9.2.2)."""
        return self.method in _IDEMPOTENT


@attrs.frozen(slots=True)
class EndUser:
    """The end user on whose behalf a request is made, when they are present.

    Banks use it for fraud checks; finAPI forwards it as ``PSU-*`` headers, Everifin asks for
    ``User-Agent`` and ``client-ip-address`` "whenever possible".

    Raises:
        ValidationError: ``ip_address`` is not a user's IP address (junk, unspecified,
            multicast), or a text is not printable, one line, at most 512 characters.
    """

    ip_address: str | None = attrs.field(default=None, validator=lambda _s, _a, v: _address(v))
    user_agent: str | None = attrs.field(default=None, validator=lambda _s, a, v: _text(a, v))
    device_os: str | None = attrs.field(default=None, validator=lambda _s, a, v: _text(a, v))


#: Longer than any real user agent; a header a server may still take.
_MAX_TEXT: Final = 512


def _address(value: object) -> None:
    """An address a user can have: it exempts finAPI updates from the unattended budget."""
    if value is None:
        return
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or address.is_unspecified or address.is_multicast:
        raise ValidationError("end_user.ip_address is not a user's IP address")


def _text(attribute: attrs.Attribute[Any], value: object) -> None:
    """Header-safe: printable, one line, bounded (the value is never echoed)."""
    if value is None:
        return
    if not isinstance(value, str) or len(value) > _MAX_TEXT or not value.isprintable():
        raise ValidationError(
            f"end_user.{attribute.name} must be printable text of at most {_MAX_TEXT} characters"
        )


ContextHeaders = Callable[[EndUser], Pairs]


def finapi_context(user: EndUser) -> Pairs:
    """finAPI's PSU headers."""
    pairs = (
        ("PSU-IP-Address", user.ip_address),
        ("PSU-User-Agent", user.user_agent),
        ("PSU-Device-OS", user.device_os),
    )
    return tuple((name, value) for name, value in pairs if value)


def everifin_context(user: EndUser) -> Pairs:
    """Everifin's client context headers."""
    pairs = (("User-Agent", user.user_agent), ("client-ip-address", user.ip_address))
    return tuple((name, value) for name, value in pairs if value)


class ApiClient:
    """Sends resource requests for one provider through the session manager.

    Args:
        manager: Supplies bearer tokens (and the aiohttp session).
        provider: The provider's name (registered in ``manager``).
        base_url: Base URL of the API; defaults to the provider's ``api_url``.
        context_headers: How an :class:`EndUser` becomes headers for this provider.
        timeout: Default total seconds per request.
        retry: Attempts and waits; defaults to :class:`~aiofinaccess.core.lifecycle.RetryPolicy`.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str,
        *,
        base_url: str | URL | None = None,
        context_headers: ContextHeaders | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._manager = manager
        self._provider = provider
        base = base_url if base_url is not None else manager.provider(provider).api_url
        if base is None:
            raise ConfigurationError(f"provider {provider} has no api_url")
        self.base_url = URL(str(base).rstrip("/"))
        origins = manager.provider(provider).api_origins()
        self._trusted: Callable[[URL], bool] = lambda url: origin_of(url) in origins
        if not self._trusted(self.base_url):
            # A token is only ever sent to the provider's API origins (see Provider.api_origins).
            raise ConfigurationError(
                f"base_url {self.base_url.origin()} is not an API origin of provider {provider}; "
                "add it to the provider's extra_api_origins if it is meant to get its tokens"
            )
        self._context_headers = context_headers
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._retrier = Retrier(
            backoff=self._retry.request_backoff,
            attempts=self._retry.attempts,
            sleep=manager.clock.sleep,
            random=random.random,  # jitter, not secrets
        )
        self._max_body = max_body

    def __repr__(self) -> str:
        return f"ApiClient(provider={self._provider!r}, base_url={str(self.base_url)!r})"

    def url(self, endpoint: Endpoint, path_params: Mapping[str, str] | None = None) -> URL:
        """The absolute URL of ``endpoint`` with its path parameters quoted.

        Raises:
            UsageError: A path parameter is empty, ``.`` or ``..``.
        """
        quoted = {name: _segment(name, value) for name, value in (path_params or {}).items()}
        return URL(str(self.base_url) + endpoint.path.format(**quoted), encoded=True)

    async def call(
        self,
        endpoint: Endpoint,
        *,
        subject: str | None = None,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        end_user: EndUser | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> HttpResponse:
        """Send one API request and return the successful response.

        Args:
            endpoint: What to call.
            subject: The end user's id, for ``auth="user"`` endpoints.
            path_params: Values for the path template.
            params: Query parameters.
            json: A JSON body.
            end_user: The present end user's context, forwarded as headers.
            timeout: Total seconds, overriding the client's default.
            request_id: The ``X-Request-Id`` to send (a payment's client reference); a fresh
                one by default.

        Raises:
            ApiError: A typed subclass for the status (``NotFoundError``, ``EntityExistsError``...).
            TransportError: The network failed and retrying did not help.
            ReauthorizationRequired: The user's grant is dead.
        """
        if endpoint.auth == "user" and subject is None:
            raise ConfigurationError(f"{endpoint.method} {endpoint.path} needs the end user's id")
        url = self.url(endpoint, path_params)
        if request_id is None:
            request_id = new_request_id()
        headers: Pairs = (("Accept", "application/json"), ("X-Request-Id", request_id))
        if end_user is not None and self._context_headers is not None:
            headers += self._context_headers(end_user)
        query: Pairs = tuple((params or {}).items())
        request = HttpRequest(endpoint.method, url, query=query, headers=headers, json_body=json)
        return await self._retrier.call(
            f"{endpoint.method} {endpoint.path}",
            lambda: self._send_authorized(
                endpoint,
                request,
                subject if endpoint.auth == "user" else None,
                timeout if timeout is not None else self._timeout,
            ),
            retry_on=lambda error: self._retryable(error, endpoint),
        )

    async def _send_authorized(
        self, endpoint: Endpoint, request: HttpRequest, subject: str | None, timeout: float
    ) -> HttpResponse:
        session = self._manager.http_session()
        token = None
        if endpoint.auth != "none":
            if not self._trusted(request.url):  # checked at construction; kept next to the token
                raise ConfigurationError(f"{request.url.origin()} is not an API origin")
            token = await self._manager.access_token(self._provider, subject)
        # Labels for the session's trace configs (telemetry); the subject only as the app's
        # own trace config chooses to record it.
        trace = {"provider": self._provider, "endpoint": f"{endpoint.method} {endpoint.path}"}
        if subject is not None:
            trace["subject"] = subject
        limit = self._max_body
        response = await send(
            session, _with_bearer(request, token), timeout=timeout, max_body=limit, trace=trace
        )
        if response.status == 401 and token is not None:
            token = await self._manager.renew_after_rejection(self._provider, subject, token)
            response = await send(
                session, _with_bearer(request, token), timeout=timeout, max_body=limit, trace=trace
            )
        if response.status not in endpoint.expect:
            raise error_from_response(
                response.status,
                response.body,
                response.headers,
                request_id=response.request_id,
                context=f"{endpoint.method} {endpoint.path}",
            )
        return response

    def _retryable(self, error: BaseException, endpoint: Endpoint) -> bool:
        if isinstance(error, TransportError):
            return error.retryable and (not error.request_sent or endpoint.idempotent)
        if isinstance(error, ApiError):
            if error.status == 429:
                return error.retry_after is None or error.retry_after <= self._retry.max_retry_after
            return endpoint.idempotent and error.status in (500, 502, 503, 504)
        return False


def _segment(name: str, value: object) -> str:
    """One path parameter as one path segment, or a refusal.

    Quoting makes ``/`` harmless, but ``.`` and ``..`` are dot segments that a server or
    proxy normalising paths (RFC 3986 5.2.4) resolves to another resource, reached with the
    same token; ``%2E`` is equivalent to ``.``, so encoding is no way out. An empty value
    names the collection instead of a member.
    """
    text = str(value)
    if text in ("", ".", ".."):
        raise UsageError(f"path parameter {name} must not be {text!r}")
    return quote(text, safe="")


def _with_bearer(request: HttpRequest, token: str | None) -> HttpRequest:
    if token is None:
        return request
    return attrs.evolve(
        request, headers=(*request.headers, ("Authorization", Secret(f"Bearer {token}")))
    )
