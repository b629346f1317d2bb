"""Where a bearer token may go: the origins of a provider's API and token endpoint.

An origin is (scheme, host, port) with the scheme's default port filled in, compared exactly:
``https://api.example.com`` and ``https://api.example.com:443`` are one origin;
``http://`` of the same host, another port, a subdomain, or a host that merely starts with the
API's name are others. A request to any other origin gets no token from us.

Pure functions, no I/O: the aiohttp middleware and the httpx adapter share the rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from yarl import URL

from ..errors import ConfigurationError
from ..providers import Provider

__all__ = ["Origin", "origin_of", "provider_origins", "trusted"]

#: Scheme, host and port (the scheme's default when the URL names none), lower case.
Origin = tuple[str, str, int]


def origin_of(url: str | URL) -> Origin | None:
    """The origin of an absolute ``http(s)`` URL, else ``None``."""
    parsed = url if isinstance(url, URL) else URL(str(url))
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https") or not parsed.host or parsed.port is None:
        return None
    return scheme, parsed.host.lower().rstrip("."), parsed.port


def provider_origins(provider: Provider, extra: Iterable[str | URL] = ()) -> frozenset[Origin]:
    """The origins a provider's tokens may be sent to: its API's and its token endpoint's,
    and those the app names in ``extra`` (another API host of the same provider).

    Raises:
        ConfigurationError: An ``extra`` entry is not an absolute ``http(s)`` URL.
    """
    found = {origin_of(url) for url in (provider.api_url, provider.token_url) if url is not None}
    for url in extra:
        origin = origin_of(url)
        if origin is None:
            raise ConfigurationError(f"trusted origin {str(url)!r} is not an http(s) URL")
        found.add(origin)
    found.discard(None)
    return frozenset(origin for origin in found if origin is not None)


def trusted(url: str | URL, origins: frozenset[Origin]) -> bool:
    """Whether ``url`` is on one of ``origins``."""
    return origin_of(url) in origins
