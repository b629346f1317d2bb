"""The one place that turns a request description into an aiohttp call.

Secrets are revealed at the last moment; requests go with an *empty middleware list* (token
endpoint calls must never run through our own auth middleware), bodies are read under a size
limit, and aiohttp's exceptions become :class:`~aiofinaccess.core.errors.TransportError` with
an honest ``request_sent``: only a failure to connect proves the server never saw the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..core._json import parse_json
from ..core.errors import TransportError
from ..core.fencing import check_before_send
from ..core.tokens import Secret

__all__ = [
    "DEFAULT_MAX_BODY",
    "HttpRequest",
    "HttpResponse",
    "new_request_id",
    "send",
]

#: Token and API error bodies are small; anything past this is refused rather than buffered.
DEFAULT_MAX_BODY: Final = 4 * 1024 * 1024

Pairs = tuple[tuple[str, "str | Secret"], ...]


def _keys(pairs: Pairs) -> str:
    return "[" + ", ".join(name for name, _ in pairs) + "]"


def new_request_id() -> str:
    """A fresh ``X-Request-Id`` (finAPI accepts up to 255 characters)."""
    return uuid.uuid4().hex


@attrs.frozen(slots=True)
class HttpRequest:
    """A request to send. Values may be :class:`Secret`; the repr shows parameter names only."""

    method: str
    url: URL
    form: Pairs = attrs.field(default=(), repr=_keys)
    query: Pairs = attrs.field(default=(), repr=_keys)
    headers: Pairs = attrs.field(default=(), repr=_keys)
    json_body: Any = attrs.field(default=None, repr=lambda value: "..." if value else "None")

    def header(self, name: str) -> str | Secret | None:
        """The first value of header ``name`` (case-insensitive)."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


@attrs.frozen(slots=True)
class HttpResponse:
    """A response read in full."""

    status: int
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=lambda body: f"<{len(body)} bytes>")
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """Decode the body as JSON. Raises ``ValueError`` if it is not JSON (or too deep)."""
        return parse_json(self.body)


def _reveal(pairs: Pairs) -> list[tuple[str, str]]:
    return [(name, value.reveal() if isinstance(value, Secret) else value) for name, value in pairs]


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise TransportError(
            f"response body of {declared} bytes exceeds the {limit}-byte limit",
            request_sent=True,
            retryable=False,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise TransportError(
                f"response body exceeds the {limit}-byte limit", request_sent=True, retryable=False
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def send(
    session: aiohttp.ClientSession,
    request: HttpRequest,
    *,
    timeout: float | None = 30.0,
    max_body: int = DEFAULT_MAX_BODY,
    trace: Mapping[str, str] | None = None,
) -> HttpResponse:
    """Send ``request`` on ``session`` and read the whole response.

    ``trace`` labels the exchange for the session's ``aiohttp.TraceConfig`` handlers (their
    ``trace_request_ctx``): ``provider``, and ``grant`` or ``endpoint``. Never a secret.

    Raises:
        TransportError: The exchange failed below HTTP. ``request_sent`` is ``False`` only for
            failures to connect.
    """
    headers: Mapping[str, str] = CIMultiDict(_reveal(request.headers))
    data = _reveal(request.form) if request.form else None
    params = _reveal(request.query) if request.query else None
    what = f"{request.method} {request.url.with_query(None)}"
    check_before_send()  # the renewal's fence, as late as this process can check it
    try:
        async with session.request(
            request.method,
            request.url,
            headers=headers,
            params=params,
            data=data,
            json=request.json_body,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
            middlewares=(),
            trace_request_ctx=trace,
        ) as response:
            body = await _read_limited(response, max_body)
            return HttpResponse(
                status=response.status,
                headers=response.headers,
                body=body,
                request_id=response.headers.get("X-Request-Id") or headers.get("X-Request-Id"),
            )
    except TransportError:
        raise
    except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientConnectorSSLError):
        # Verification is never turned off: an untrusted certificate is a configuration or
        # an attack, and retrying cannot fix either.
        raise TransportError(
            f"{what}: TLS handshake or certificate verification failed",
            request_sent=False,
            retryable=False,
        ) from None
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        raise TransportError(
            f"{what}: could not connect ({type(exc).__name__})", request_sent=False
        ) from None
    except TimeoutError:
        raise TransportError(f"{what}: timed out", request_sent=True) from None
    except aiohttp.ClientError as exc:
        # Disconnects, payload errors, bad status lines: the request may have been processed.
        raise TransportError(f"{what}: {type(exc).__name__}", request_sent=True) from None
