"""MkDocs hooks: the docstrings use Sphinx roles (:class:`~a.B`), which mkdocstrings leaves as
text; show them as plain code (``B``) instead of ``:class:`` litter."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|exc|data|obj):<code>~?([^<]*)</code>")


def _short(match: re.Match[str]) -> str:
    # The ~ form shows only the last component, as Sphinx does.
    text = match[1]
    shown = text.rsplit(".", 1)[-1] if match[0].count("~") else text
    return f"<code>{shown}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """Rewrite the Sphinx roles of a rendered page."""
    return _ROLE.sub(_short, html)
