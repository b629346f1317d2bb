"""Review of the persisted ``lineage`` and ``generation``: a stored record is data from outside
the process (another version, a tool, a restored backup), so a field of the wrong type is a
typed error (StoreError), never silently coerced into a generation that decides whether this
process writes its own set over the stored one (Reinstate)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiofinaccess.core.errors import StoreError
from aiofinaccess.stores.codec import JsonCodec

KEY = "everifin\x00alice"


def _record(**fields: Any) -> bytes:
    body = {"access_token": "AT", "refresh_token": "RT", **fields}
    return json.dumps({"kind": "token_set", "key": KEY, "token_set": body}).encode()


@pytest.mark.parametrize(
    "fields",
    [
        {"generation": "7"},  # text: cattrs calls int() on it
        {"generation": 2.9},  # a float: truncated to 2
        {"generation": True},  # a boolean: 1
        {"generation": -1},  # negative: older than any set of its session
        {"lineage": 12345},  # a number: str() makes it "12345"
        {"lineage": ["a"]},  # a list: "['a']"
    ],
    ids=["gen-text", "gen-float", "gen-bool", "gen-negative", "lineage-int", "lineage-list"],
)
def test_a_mistyped_lineage_or_generation_is_a_store_error(fields: dict[str, Any]) -> None:
    codec = JsonCodec()
    good = codec.decode(_record(generation=3, lineage="abc"), kind="token_set", key=KEY)
    assert (good.generation, good.lineage) == (3, "abc")  # the envelope is the codec's own
    try:
        decoded = codec.decode(_record(**fields), kind="token_set", key=KEY)
    except StoreError:
        return
    pytest.fail(f"decoded as generation={decoded.generation!r} lineage={decoded.lineage!r}")
