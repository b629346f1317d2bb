"""What a :class:`~aiofinaccess.stores.postgres.PostgresStore` reads from asyncpg, as typed
values: anything else (a column altered by hand, a proxy answering oddly) is a
:class:`~aiofinaccess.core.errors.StoreError` naming what was wrong, never a stray
``TypeError`` or ``ValueError`` from deeper in the SDK.
"""

from __future__ import annotations

import math

from ..core.errors import StoreError

__all__ = ["blob", "changed", "integer", "number", "text"]


def _bad(what: str) -> StoreError:
    return StoreError(f"the PostgreSQL store read a malformed {what}")


def text(value: object, what: str) -> str:
    """``value`` as text."""
    if not isinstance(value, str):
        raise _bad(what)
    return value


def integer(value: object, what: str) -> int:
    """``value`` as an integer (never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(what)
    return value


def number(value: object, what: str) -> float:
    """``value`` as a finite float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(what)
    return float(value)


def blob(value: object, what: str) -> bytes:
    """``value`` as bytes."""
    if not isinstance(value, bytes):
        raise _bad(what)
    return value


def changed(status: object) -> int:
    """The row count of a command status (``UPDATE 1``, ``DELETE 0``)."""
    if isinstance(status, str):
        _, _, count = status.rpartition(" ")
        if count.isdigit():
            return int(count)
    raise _bad("command status")
