"""Keep dependencies from logging our secrets.

aiosqlite logs every call it hands to its thread at DEBUG, arguments included, and the
arguments of a store write are the stored token set. Importing aiofinaccess installs a filter
on the ``aiosqlite`` logger that keeps those records but replaces their arguments with the
called function's name. Nothing else about aiosqlite's logging changes.
"""

from __future__ import annotations

import functools
import logging
from typing import Final

__all__ = ["install_log_filters"]

_REDACTED: Final = "<arguments redacted by aiofinaccess>"


class _RedactCallArguments(logging.Filter):
    """Replace logged ``functools.partial`` calls with their function's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_describe(argument) for argument in record.args)
        return True


def _describe(argument: object) -> object:
    if isinstance(argument, functools.partial):
        name = getattr(argument.func, "__qualname__", None) or getattr(
            argument.func, "__name__", "call"
        )
        return f"{name}({_REDACTED})"
    if isinstance(argument, str | int | float | type(None)):
        return argument
    return _REDACTED


def install_log_filters() -> None:
    """Install the filters once (idempotent)."""
    logger = logging.getLogger("aiosqlite")
    if not any(isinstance(existing, _RedactCallArguments) for existing in logger.filters):
        logger.addFilter(_RedactCallArguments())
