"""Route tables an operator overrides (``attrs.evolve(Routes(), name=Endpoint(...))``, for
paths a provider does not publish), checked when a client is built: a route moved elsewhere
must keep its default's placeholders, which the client fills in, and start with a slash.
"""

from __future__ import annotations

import string
from typing import TypeVar

import attrs

from ..core.errors import ConfigurationError
from .pipeline import Endpoint

__all__ = ["check_routes"]

T = TypeVar("T")


def _placeholders(path: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(path) if name is not None}


def check_routes(routes: T) -> T:
    """``routes`` (an attrs class of :class:`Endpoint` fields with defaults), if each route
    starts with ``/`` and names the placeholders its default names.

    Raises:
        ConfigurationError: Naming the route and what it must be.
    """
    for field in attrs.fields(type(routes)):  # type: ignore[arg-type]  # an attrs route table
        endpoint, default = getattr(routes, field.name), field.default
        if not isinstance(endpoint, Endpoint) or not isinstance(default, Endpoint):
            continue
        where = f"route {type(routes).__name__}.{field.name} ({endpoint.path!r})"
        if not endpoint.path.startswith("/"):
            raise ConfigurationError(f"{where}: a path starts with '/'")
        try:
            given = _placeholders(endpoint.path)
        except ValueError:
            raise ConfigurationError(f"{where}: unbalanced braces") from None
        wanted = _placeholders(default.path)
        if given != wanted:
            names = ", ".join(f"{{{name}}}" for name in sorted(wanted)) or "no placeholders"
            raise ConfigurationError(f"{where}: it takes {names}, as {default.path!r} does")
    return routes
