"""Contract tests' shared part: finAPI's OpenAPI specs (tests/specs) and the validation of the
exchanges the sandbox recorded (``SandboxConfig(record_requests=True)``) against them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from aiofinaccess.sandbox.state import Exchange

SPECS = Path(__file__).resolve().parents[1] / "specs"


def spec_document(name: str) -> dict[str, Any]:
    """A spec from tests/specs as a document, for the caller to adjust before validating."""
    document: dict[str, Any] = yaml.safe_load((SPECS / name).read_text())
    # finAPI's Web Form specs give their bearer scheme a `name`, which OpenAPI 3.0 allows on
    # apiKey schemes only.
    for scheme in document.get("components", {}).get("securitySchemes", {}).values():
        if scheme.get("type") != "apiKey":
            scheme.pop("name", None)
    return document


def spec(name: str) -> OpenAPI:
    return OpenAPI.from_dict(spec_document(name))


def mock_request(exchange: Exchange, host: str) -> MockRequest:
    """The recorded request as openapi-core reads it (repeated query parameters kept)."""
    args: dict[str, list[str]] = defaultdict(list)
    for name, value in exchange.query_pairs:
        args[name].append(value)
    return MockRequest(
        host,
        exchange.method.lower(),
        exchange.path,
        args=dict(args),
        headers=exchange.headers,
        data=exchange.body or None,
        content_type=exchange.content_type,
    )


def validate_exchange(
    spec: OpenAPI, host: str, exchange: Exchange, *, request_too: bool = True
) -> None:
    """Validate the answer (and the request, unless it breaks the spec on purpose)."""
    request = mock_request(exchange, host)
    if request_too:
        spec.validate_request(request)
    spec.validate_response(
        request,
        MockResponse(
            exchange.response_body,
            exchange.status,
            exchange.response_headers,
            exchange.response_content_type,
        ),
    )


def access_spec(cut: str = "finapi-access-v1-data.yaml") -> OpenAPI:
    """A cut of finAPI Access v1's spec (the data one by default), with each object field
    marked nullable next to an ``allOf`` (an interface's ``aisConsent``, ``lastManualUpdate``,
    an error's ``bank``...) inlined as a nullable copy of its schema, so its fields are checked
    too (OpenAPI 3.0 validators do not carry ``nullable`` into an ``allOf``); other such fields
    are loosened to their bare nullable type."""
    document = spec_document(cut)
    schemas = document["components"]["schemas"]
    for schema in schemas.values():
        for name, field in (schema.get("properties") or {}).items():
            if field.get("nullable") and "allOf" in field:
                target = schemas[field["allOf"][0]["$ref"].rsplit("/", 1)[1]]
                if target.get("type") == "object":
                    schema["properties"][name] = {**target, "nullable": True}
                else:
                    schema["properties"][name] = {"type": target.get("type"), "nullable": True}
    return OpenAPI.from_dict(document)
