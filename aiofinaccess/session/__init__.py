"""The session: the manager composed of a registry of providers and entries, the renewal driver that
carries out the core's renewal steps, the scheduler, events and counters.

Wall: imports ``core``, ``oauth`` and ``stores``. Never ``api``, ``integrations``, ``cli`` or
``sandbox``.
"""
