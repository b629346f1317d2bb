"""A Redis Cluster the store cannot reach is a StoreError, never redis-py's own exception.

redis-py's cluster errors (``RedisClusterException`` and its ``RedisClusterUnreachableError``)
do not derive from ``RedisError``; found by the CLI's store-URL tests (issue 22, finding 5).
"""

from __future__ import annotations

import socket

import pytest

from aiofinaccess import StoreError
from aiofinaccess.stores.redis import RedisStore


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_cluster_raises_store_error() -> None:
    store = RedisStore(f"redis+cluster://127.0.0.1:{_closed_port()}/0")
    try:
        with pytest.raises(StoreError):
            async for _key in store.keys():
                pass
    finally:
        await store.aclose()
