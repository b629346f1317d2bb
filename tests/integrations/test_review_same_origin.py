"""Review of the disconnect's same-origin check (integrations/same_origin.py).

Its rule says ``Origin: null`` passes only with ``Sec-Fetch-Site: same-origin``. A browser
sends ``null`` for an opaque origin: a sandboxed frame (an HTML e-mail or upload the app shows
in ``<iframe sandbox srcdoc>``, whose Referer is the app's page that frames it), a page that
went through a cross-origin redirect. Browsers without Fetch Metadata (Safari before 16.4)
send no ``Sec-Fetch-Site`` with it. The ``Referer`` fallback is reached before the ``null``
rule, so such a request passes on its Referer alone."""

from __future__ import annotations

import pytest

from aiofinaccess.integrations.same_origin import is_same_origin

APP = "https://app.example"


@pytest.mark.parametrize("sec_fetch_site", [None, "", "none"])
def test_origin_null_never_passes_on_a_referer(sec_fetch_site: str | None) -> None:
    assert not is_same_origin(
        APP, origin="null", referer=f"{APP}/inbox/42", sec_fetch_site=sec_fetch_site
    )


def test_origin_null_with_same_origin_fetch_metadata_still_passes() -> None:
    """The documented case (a same-origin form under Referrer-Policy: no-referrer) holds."""
    assert is_same_origin(APP, origin="null", referer=None, sec_fetch_site="same-origin")
