"""What one held token set costs a SessionManager, by tracemalloc (many_sessions.py's memory).

``measure(n)`` starts a manager (scheduler on, the default policy) on a ``MemoryStore``,
stores ``n`` sets shaped like Keycloak's token responses (a 1,900-character access token and a
1,400-character refresh token, as its RS256 JWTs with realm roles are; ``session_state`` and
``not-before-policy`` besides), each decoded from JSON as a response is, and restores them
(``manager.restore()``: an entry, a set, its deadlines and a scheduler item each; no request).
Then the store's own records are dropped, so what stays traced is what the manager holds: the
registry entry, the token set with its token strings, the key, the deadlines and the
scheduler's item. The MemoryStore's record (its copy of the set, version, dict slot) is
reported apart: a Redis or PostgreSQL store keeps none in the process.
"""

from __future__ import annotations

import gc
import json
import linecache
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from aiofinaccess import ClientCredentials, Everifin, RefreshPolicy, Schedule, SessionManager
from aiofinaccess.core.tokens import Anchor, TokenKey, parse_token_response
from aiofinaccess.stores.memory import MemoryStore

ACCESS_CHARS = 1_900
REFRESH_CHARS = 1_400
TOKEN_CHARS = ACCESS_CHARS + REFRESH_CHARS
LIFETIME = 300  # nothing comes due while measuring
_PACKAGE = str(Path(__file__).resolve().parents[1] / "aiofinaccess")


def keycloak_body(index: int) -> dict[str, Any]:
    """A Keycloak token response for set ``index``, decoded from JSON (fresh strings)."""
    body = {
        "access_token": f"eyJ.at{index:010d}".ljust(ACCESS_CHARS, "A"),
        "expires_in": LIFETIME,
        "refresh_expires_in": 1800,
        "refresh_token": f"eyJ.rt{index:010d}".ljust(REFRESH_CHARS, "R"),
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": f"5f8e7a1c-0d3b-4e62-9a41-{index:012d}",
        "scope": "openid ais",
    }
    decoded: dict[str, Any] = json.loads(json.dumps(body))
    return decoded


def _site(trace: tracemalloc.Trace) -> str:
    """The innermost aiofinaccess line that made the allocation (else the innermost line)."""
    frames = list(reversed(trace.traceback))  # innermost first
    frame = next((f for f in frames if f.filename.startswith(_PACKAGE)), frames[0])
    name = frame.filename.removeprefix(_PACKAGE + "/")
    code = linecache.getline(frame.filename, frame.lineno).strip()
    return f"{Path(name).name}:{frame.lineno}  {code[:70]}"


async def measure(sessions: int, *, breakdown: int = 0) -> dict[str, Any]:
    """Bytes per set the manager holds (and the MemoryStore's record); the ``breakdown``
    largest allocation sites of a held set, bytes and objects per set."""
    store = MemoryStore()
    manager = SessionManager(store=store, policy=RefreshPolicy(), schedule=Schedule(jitter=0.2))
    async with manager:
        manager.register(
            Everifin.at("http://127.0.0.1:9/auth", "http://127.0.0.1:9"),
            ClientCredentials("aiofinaccess-bench", "secret"),
        )
        gc.collect()
        tracemalloc.start(12)
        try:
            for index in range(sessions):
                sent = Anchor(time.time(), time.monotonic())
                token_set = parse_token_response(keycloak_body(index), sent=sent)
                key = TokenKey("everifin", f"user-{index}")
                await store.put(key, token_set, expected_version=None)
            restored = await manager.restore()
            gc.collect()
            with_store, _ = tracemalloc.get_traced_memory()
            store._data.clear()  # the store's records; the manager's entries stay
            gc.collect()
            held, _ = tracemalloc.get_traced_memory()
            snapshot = tracemalloc.take_snapshot() if breakdown else None
        finally:
            tracemalloc.stop()
    if restored != sessions:
        raise RuntimeError(f"restored {restored} of {sessions} token sets")
    sites: list[dict[str, Any]] = []
    if snapshot is not None:
        sizes: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        for trace in snapshot.filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        ).traces:
            site = _site(trace)
            sizes[site] += trace.size
            counts[site] += 1
        sites = [
            {"site": site, "bytes": size / sessions, "objects": counts[site] / sessions}
            for site, size in sizes.most_common(breakdown)
            if size / sessions >= 1
        ]
    return {
        "token_chars": TOKEN_CHARS,
        "held_bytes_per_set": held / sessions,
        "held_bytes_beyond_tokens": held / sessions - TOKEN_CHARS,
        "store_record_bytes_per_set": (with_store - held) / sessions,
        "breakdown": sites,
    }
