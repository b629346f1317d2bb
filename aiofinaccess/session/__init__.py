"""The session: the manager, composed of parts :mod:`~aiofinaccess.session.assembly` builds in
dependency order: the registry of providers and entries, the store access, the renewal driver
that carries out the core's renewal steps, the scheduler or (on a shared store) the refresh
duty, the change feed, events and counters.

Wall: imports ``core``, ``oauth`` and ``stores``. Never ``api``, ``integrations``, ``cli`` or
``sandbox``.
"""
