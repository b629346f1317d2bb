"""The OAuth protocol side: providers as data and their presets, the token-endpoint client,
authorization requests and callbacks, the HTTP transport, and the parsers of provider error bodies.

Wall: imports ``core`` (and aiohttp). Never ``stores``, ``session``, ``api``, ``integrations``,
``cli`` or ``sandbox``: it knows nothing of where tokens are kept or who renews them.
"""
