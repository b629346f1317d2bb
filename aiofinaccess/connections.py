"""Bank connections' life across the fleet: states, events, the registry kept in the store.

``manager.connections`` is the :class:`ConnectionRegistry` of a session manager; the events it
delivers and the rows it lists are here, and :class:`UpdateBudget` (PSD2's unattended updates).
The names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .core import _exports

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .core.connections import ConnectionState as ConnectionState
    from .core.connections import Observation as Observation
    from .core.settings import UpdateBudget as UpdateBudget
    from .session.connection_events import ConnectionEvent as ConnectionEvent
    from .session.connection_events import ConnectionExpiring as ConnectionExpiring
    from .session.connection_events import ConnectionInfo as ConnectionInfo
    from .session.connection_events import ConnectionRepaired as ConnectionRepaired
    from .session.connection_events import ReconnectRequired as ReconnectRequired
    from .session.connections import ConnectionRegistry as ConnectionRegistry

#: Each public name, once, by the module it lives in.
_HOMES: Final = {
    ".core.connections": "ConnectionState Observation",
    ".core.settings": "UpdateBudget",
    ".session.connection_events": (
        "ConnectionEvent ConnectionExpiring ConnectionInfo ConnectionRepaired ReconnectRequired"
    ),
    ".session.connections": "ConnectionRegistry",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
