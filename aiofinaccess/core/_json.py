"""JSON from peers: one decoder whose every failure is a ``ValueError``."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_json"]


def parse_json(data: bytes | bytearray | str) -> Any:
    """Decode JSON sent by a server, a browser or a store; every failure is a ``ValueError``.

    ``json.loads`` raises ``RecursionError`` (not a ``ValueError``) for a document nested
    deeper than the interpreter's recursion limit, which a hostile server can send in a few
    hundred kilobytes; callers that catch ``ValueError`` then fail typed instead of crashing.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
