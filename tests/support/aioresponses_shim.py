"""Make aioresponses 0.7.9 work with aiohttp >= 3.14 (aioresponses issue #289).

aiohttp 3.14 added a required ``stream_writer`` argument to ``ClientResponse``; aioresponses
builds responses without it. This response class supplies a writer that reports nothing sent,
which is all a pre-built response needs. Bodies must stay under 64 KiB (one stream-reader
buffer); larger bodies are tested against a real local server instead.
"""

from __future__ import annotations

from typing import Any

import aioresponses.core
from aiohttp import ClientResponse


class _FinishedWriter:
    output_size = 0


class ShimResponse(ClientResponse):
    """A ``ClientResponse`` that tolerates a missing ``stream_writer``."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _FinishedWriter())
        super().__init__(method, url, **kwargs)


def install() -> None:
    """Make aioresponses build :class:`ShimResponse` objects by default."""
    aioresponses.core.ClientResponse = ShimResponse  # type: ignore[misc]
