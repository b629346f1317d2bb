"""A held set at rest: packed into one blob, unpacked equal in every field kept."""

from __future__ import annotations

import pickle

import pytest

from aiofinaccess import Everifin
from aiofinaccess.core.lifecycle import RefreshPolicy, Status, plan
from aiofinaccess.core.tokens import Anchor, ClientCredentials, TokenKey, TokenSet
from aiofinaccess.session.entry import Entry
from aiofinaccess.session.registry import Registry
from aiofinaccess.session.rest import Rested, pack, unpack

POLICY = RefreshPolicy()
KEY = TokenKey("everifin", "alice")


def _entry(**extra: object) -> Entry:
    token_set = TokenSet(
        access_token="at-secret",
        issued_at=1000.0,
        expires_at=1300.0,
        refresh_token="rt-secret",
        refresh_expires_at=2800.0,
        scope="openid ais",
        extra={"session_state": "s-1", "not-before-policy": 0, **extra},
        anchor=Anchor(1000.0, 50.0),
        lineage="lin",
        generation=3,
        client_id="app",
    )
    entry = Entry(KEY, POLICY)
    deadlines = plan(token_set, POLICY)
    entry.token_set, entry.version, entry.token = token_set, 7, "at-secret"
    entry.stale_at, entry.usable_until = deadlines.stale_at, deadlines.must_refresh_at
    entry.last_used, entry.renewed_at, entry.generation = 60.0, 55.0, 4
    return entry


def _fields(entry: Entry) -> tuple[object, ...]:
    token_set = entry.token_set
    assert token_set is not None
    return (
        token_set,
        dict(token_set.extra),
        token_set.anchor,
        token_set.lineage,
        token_set.generation,
        token_set.client_id,
        entry.version,
        entry.token,
        entry.stale_at,
        entry.usable_until,
        entry.last_used,
        entry.stamped,
        entry.renewed_at,
        entry.generation,
        entry.status,
    )


def test_an_entry_at_rest_unpacks_equal_in_every_field_kept() -> None:
    entry = _entry()
    blob = pack(entry)
    assert blob is not None
    assert _fields(unpack(blob, KEY, POLICY)) == _fields(entry)
    assert b"at-secret" in blob  # the tokens are in it, so it must not show them
    assert "secret" not in repr(blob)
    assert "secret" not in str(blob)
    with pytest.raises(TypeError):
        pickle.dumps(blob)


@pytest.mark.parametrize(
    "change",
    [
        lambda e: setattr(e, "failures", 1),
        lambda e: setattr(e, "status", Status.BACKOFF),
        lambda e: setattr(e, "rearm", True),
        lambda e: setattr(e, "dead_version", 3),
        lambda e: setattr(e, "stamped", float("inf")),  # the duty's entry
        lambda e: setattr(e, "stale_at", 0.0),  # not what its set plans
    ],
)
def test_an_entry_with_more_to_keep_is_not_packed(change: object) -> None:
    entry = _entry()
    change(entry)  # type: ignore[operator]
    assert pack(entry) is None


def test_a_set_read_from_a_busy_store_rests_with_its_later_renewal() -> None:
    """A restored set is renewed at its youngest (its read's slack) but handed out at its
    oldest: at rest it keeps both, so a booting fleet's sets rest too."""
    entry = _entry()
    entry.stale_at += 0.25  # publish's slack: the read took a quarter of a second
    blob = pack(entry)
    assert blob is not None
    again = unpack(blob, KEY, POLICY)
    assert (again.stale_at, again.usable_until) == (entry.stale_at, entry.usable_until)


def test_an_extra_value_marshal_refuses_keeps_the_entry_unpacked() -> None:
    assert pack(_entry(odd=object())) is None


def test_an_unstamped_use_keeps_the_entry_unpacked_where_uses_are_stamped() -> None:
    entry = _entry()
    assert pack(entry, stamps=True) is None
    entry.stamped = entry.last_used
    assert pack(entry, stamps=True) is not None


def test_the_registry_keeps_a_rested_set_packed_and_unpacks_it_when_found() -> None:
    registry = Registry(policy=POLICY)
    registry.add(
        Everifin.at("http://127.0.0.1:9/auth", "http://127.0.0.1:9"),
        ClientCredentials("app", "s"),
        None,
    )
    entry = registry.entry(KEY)
    rested = _entry()
    for name in Entry.__slots__:
        setattr(entry, name, getattr(rested, name))
    registry.rest(entry)
    value = registry.entries["everifin"]["alice"]
    assert isinstance(value, Rested)
    assert value.token is None  # the fresh path passes it by
    assert entry.generation == 5  # a caller still holding it sees a change
    assert [_fields(e) for e in registry] == [_fields(rested)]
    assert isinstance(registry.entries["everifin"]["alice"], Rested)  # iterating keeps it
    found = registry.find("everifin", "alice")
    assert found is not None
    assert _fields(found) == _fields(rested)
    assert registry.entries["everifin"]["alice"] is found
    assert registry.hot() == [found]
