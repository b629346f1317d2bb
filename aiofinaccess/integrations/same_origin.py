"""Is a state-changing browser request from the app's own pages? (cross-site request forgery)

:func:`is_same_origin` decides from the headers a browser sets and a page cannot:
``Sec-Fetch-Site``, ``Origin``, and ``Referer`` when ``Origin`` is absent. Pure: the
integrations pass the headers and the app's origin, and answer 403 when it says no.

* ``Sec-Fetch-Site: cross-site`` or ``same-site`` (another origin) is refused at once.
* ``Origin`` (sent with every POST by current browsers) must be the app's origin.
* Without ``Origin`` (older browsers), the ``Referer``'s origin must be.
* ``Origin: null`` (``Referrer-Policy: no-referrer``) passes only with
  ``Sec-Fetch-Site: same-origin``, never on a ``Referer``.
* Neither: refused. Such a request is not from a browser form, and a non-browser
  client has no victim's cookies to forge with; it can send ``Origin`` itself.

The app's origin is what the app says it is (a configured public origin) or, failing that,
the request's own URL. The latter comes from the ``Host`` header, which a browser sets to the
site it talks to: a forged cross-site request cannot choose it.
"""

from __future__ import annotations

from yarl import URL

__all__ = ["is_same_origin", "origin_of"]


def origin_of(value: str | None) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, normalised; else ``None``.

    >>> origin_of("HTTPS://App.Example:443/accounts?x=1")
    'https://app.example'
    >>> origin_of("null") is None
    True
    """
    if not value:
        return None
    try:
        url = URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            return None
        return str(url.origin())
    except ValueError:  # not a URL at all ("http://[::1"); a browser never sends one
        return None


def is_same_origin(
    app_origin: str,
    *,
    origin: str | None,
    referer: str | None,
    sec_fetch_site: str | None = None,
) -> bool:
    """True when the request's headers show it came from a page of ``app_origin``."""
    expected = origin_of(app_origin)
    if expected is None:
        return False
    fetch_site = (sec_fetch_site or "").strip().lower()
    if fetch_site in ("cross-site", "same-site"):
        return False
    if origin is not None:
        if origin.strip() == "null":
            # A same-origin form under Referrer-Policy: no-referrer, or a sandboxed frame of
            # attacker HTML the app renders: only Fetch Metadata tells them apart, never the
            # Referer (which such a frame carries from the app's own page).
            return fetch_site == "same-origin"
        return origin_of(origin.strip()) == expected
    if referer:
        return origin_of(referer.strip()) == expected
    return False
