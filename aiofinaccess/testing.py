"""The pytest plugin's stable name: ``pytest_plugins = ["aiofinaccess.testing"]``.

The fixtures live in :mod:`aiofinaccess.integrations.testing`; this module only keeps the
documented plugin path short and unchanged across the package's reorganisations.
"""

from __future__ import annotations

from .integrations.testing import (
    sandbox,
    sandbox_config,
    sandbox_manager,
    sandbox_providers,
)

__all__ = ["sandbox", "sandbox_config", "sandbox_manager", "sandbox_providers"]
