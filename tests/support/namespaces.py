"""The public namespaces, each declaring its names once in ``_HOMES``: the token layer, its
errors, OAuth's building blocks, what stores are made of, then each provider's resources and
what their payments share."""

from __future__ import annotations

import aiofinaccess
import aiofinaccess.connections
import aiofinaccess.errors
import aiofinaccess.everifin
import aiofinaccess.finapi
import aiofinaccess.oauth
import aiofinaccess.payments
import aiofinaccess.stores

NAMESPACES = (
    aiofinaccess,
    aiofinaccess.errors,
    aiofinaccess.oauth,
    aiofinaccess.stores,
    aiofinaccess.finapi,
    aiofinaccess.everifin,
    aiofinaccess.payments,
    aiofinaccess.connections,
)
