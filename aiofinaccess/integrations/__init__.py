"""Adapters for the libraries apps already use; each needs its optional extra.

* :mod:`aiofinaccess.integrations.httpx`: an ``httpx.Auth`` backed by a session manager
  (extra ``httpx``);
* :mod:`aiofinaccess.integrations.starlette`: connect routes, lifespan and request
  dependencies for Starlette and FastAPI (extra ``starlette`` or ``fastapi``);
* :mod:`aiofinaccess.integrations.otel`: OpenTelemetry metrics and spans (extra ``otel``).

``import aiofinaccess`` imports none of them, and none of their libraries.
"""
