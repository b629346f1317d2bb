"""Small helpers the emulated services share: request ids, bearer tokens, forms, secrets."""

from __future__ import annotations

import secrets
import uuid
from typing import Any, Final

import aiohttp
from aiohttp import web

from .state import CallbackFaults

__all__ = [
    "REQUEST_ID",
    "bearer",
    "form_fields",
    "json_error",
    "new_token",
    "post_callback",
    "request_id",
]

CALLBACK_TIMEOUT: Final = 3.0

#: Where the sandbox middleware keeps the exchange's request id (finAPI echoes it in bodies).
REQUEST_ID = web.RequestKey("request_id", str)


def new_token(prefix: str) -> str:
    """An opaque random token, recognisable by its prefix in the sandbox's own logs."""
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def request_id(request: web.Request) -> str:
    """The caller's ``X-Request-Id``, or one finAPI-style generated here."""
    return request.headers.get("X-Request-Id") or f"selfgen-{uuid.uuid4()}"


def bearer(request: web.Request) -> str | None:
    """The bearer token of ``request``, if any."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def form_fields(request: web.Request) -> dict[str, str] | None:
    """The urlencoded form body, or ``None`` when the body is not a form."""
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    data = await request.post()
    return {key: value for key, value in data.items() if isinstance(value, str)}


def json_error(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    """A JSON error response."""
    return web.json_response(body, status=status, headers=headers or None)


async def post_callback(
    url: str, body: dict[str, Any], faults: CallbackFaults | None = None
) -> bool:
    """POST ``body`` to a client's callback URL as ``faults`` say (by default once, best
    effort, the answer ignored, as finAPI does); whether the app accepted it once."""
    faults = faults or CallbackFaults()
    timeout = aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT)
    accepted, lost = False, faults.lost_answers
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(faults.attempts):
            status = await _post(session, url, body)
            if status is not None and (faults.attempts == 1 or 200 <= status < 300):
                if lost == 0:
                    accepted = True
                    break
                lost -= 1  # processed by the app; its answer is "lost": send it again
        for _ in range(faults.duplicates if accepted else 0):
            await _post(session, url, body)
    return accepted


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int | None:
    try:
        async with session.post(url, json=body) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None
