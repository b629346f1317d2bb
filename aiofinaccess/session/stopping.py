"""The session's background tasks stop through :func:`~aiofinaccess.core.stopping.cancel_and_wait`
(it lives in ``core``, where the stores reach it too).

Must never import: aiohttp, ``oauth``, ``stores``, ``api``, ``integrations``, ``cli`` or
``sandbox``.
"""

from __future__ import annotations

from ..core.stopping import cancel_and_wait

__all__ = ["cancel_and_wait"]
