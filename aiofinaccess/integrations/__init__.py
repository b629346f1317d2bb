"""Adapters for the libraries apps already use; each needs its optional extra.

* :mod:`aiofinaccess.integrations.httpx`: an ``httpx.Auth`` backed by a session manager
  (extra ``httpx``);
* :mod:`aiofinaccess.integrations.starlette`: connect routes, lifespan and request
  dependencies for Starlette and FastAPI (extra ``starlette`` or ``fastapi``);
* :mod:`aiofinaccess.integrations.otel`: OpenTelemetry metrics and spans (extra ``otel``);
* :mod:`aiofinaccess.integrations.middleware`: the aiohttp client middleware (``BearerAuth``);
* :mod:`aiofinaccess.integrations.web`: connect routes for aiohttp.web (``WebConnect``);
* :mod:`aiofinaccess.integrations.paygate_webhooks`: Everifin Paygate's webhook receiver, as an
  aiohttp.web or a Starlette route (``PaygateWebhooks``);
* :mod:`aiofinaccess.integrations.testing`: pytest fixtures around the sandbox (the plugin is
  named ``aiofinaccess.testing``).

``import aiofinaccess`` imports none of their libraries.

Wall: imports the public API (``session``, ``api``, ``oauth``, ``core``); each optional library
only inside its own module. Never ``cli``; nothing below imports an integration.
"""
