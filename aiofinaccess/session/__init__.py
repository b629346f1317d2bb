"""The session: the manager composed of a registry of providers and entries, the renewal driver that
carries out the core's renewal steps, the scheduler or (on a shared store) the refresh duty,
events and counters. ``manager`` is the public face; ``assembly`` builds its parts;
``lifetime``, ``grants``, ``bearer``, ``planning`` and ``duty`` hold what it hands over.

Wall: imports ``core``, ``oauth`` and ``stores``. Never ``api``, ``integrations``, ``cli`` or
``sandbox``.
"""
