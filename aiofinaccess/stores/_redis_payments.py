"""Payment records of a :class:`~aiofinaccess.stores.redis.RedisStore`: one hash per scope,
``{prefix}payments:{scope}``, a field per reference holding ``"{version} {sealed data}"``. An
add is ``HSETNX``; a replace is a script that compares the version first (one key: in a
cluster the scope's hash lives on one node like any other key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..core.payment_records import StoredRecord
from ._redis_layout import as_bytes
from .payment_records import check_names, open_record, seal_record

if TYPE_CHECKING:
    from ..core.tokens import TokenKey
    from .codec import TokenCodec

__all__ = ["RedisPayments"]

_T = TypeVar("_T")
Call = Callable[[str, "TokenKey | None", Awaitable[Any]], Awaitable[Any]]

# KEYS: the scope's hash. ARGV: reference, expected version, sealed data.
REPLACE: Final = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found then return 0 end
local gap = string.find(found, ' ', 1, true)
if not gap or string.sub(found, 1, gap - 1) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], (tonumber(ARGV[2]) + 1) .. ' ' .. ARGV[3])
return 1
"""


class RedisPayments:
    """One store's payment records, through its client, ``call`` and ``codec``."""

    def __init__(self, client: Any, prefix: str, call: Call, codec: TokenCodec) -> None:
        self._client = client
        self._prefix = prefix
        self._call = call
        self._codec = codec
        self._replace = client.register_script(REPLACE)

    def _name(self, scope: str) -> str:
        return f"{self._prefix}payments:{scope}"

    def _read(self, scope: str, reference: str, raw: bytes | str) -> StoredRecord:
        version, _, sealed = as_bytes(raw).partition(b" ")
        return StoredRecord(open_record(self._codec, scope, reference, sealed), int(version))

    async def add(self, scope: str, reference: str, data: bytes) -> bool:
        check_names(scope, reference)
        value = b"1 " + seal_record(self._codec, scope, reference, data)
        command = self._client.hsetnx(self._name(scope), reference, value)
        return bool(await self._call("add payment record", None, command))

    async def get(self, scope: str, reference: str) -> StoredRecord | None:
        command = self._client.hget(self._name(scope), reference)
        raw = await self._call("get payment record", None, command)
        return None if raw is None else self._read(scope, reference, raw)

    async def replace(self, scope: str, reference: str, data: bytes, expected_version: int) -> bool:
        sealed = seal_record(self._codec, scope, reference, data)
        command = self._replace(
            keys=[self._name(scope)], args=[reference, str(expected_version), sealed]
        )
        return bool(await self._call("replace payment record", None, command))

    async def scope(self, scope: str) -> dict[str, StoredRecord]:
        command = self._client.hgetall(self._name(scope))
        found = await self._call("list payment records", None, command)
        return {
            as_bytes(name).decode(): self._read(scope, as_bytes(name).decode(), raw)
            for name, raw in found.items()
        }
