"""The history checker itself, on hand-made histories: it must accept the legal ones and
refuse the illegal ones (or it could pass a broken store)."""

from __future__ import annotations

from tests.simulation.linearizability import (
    History,
    Hold,
    Op,
    check_leases,
    check_register,
)

K = "idp:user-0"


def put(t0: float, t1: float | None, expected: int | None, version: int, **kw: object) -> Op:
    return Op("put", K, t0, t1, expected=expected, version=version, **kw)  # type: ignore[arg-type]


def get(t0: float, t1: float, version: int | None) -> Op:
    return Op("get", K, t0, t1, version=version)


def test_a_sequential_history_is_legal() -> None:
    ops = [
        put(0, 1, None, 10),
        get(2, 3, 10),
        put(4, 5, 10, 11),
        Op("delete", K, 6, 7, expected=11),
        get(8, 9, None),
        Op("delete", K, 10, 11, outcome="absent"),
    ]
    assert check_register(ops) is None


def test_concurrent_writes_may_take_effect_in_either_order() -> None:
    # Both CAS from 10; the one that won is the one a later read saw.
    ops = [
        put(0, 1, None, 10),
        put(2, 6, 10, 11),
        put(3, 5, 10, 12, outcome="conflict"),
        get(7, 8, 11),
    ]
    assert check_register(ops) is None
    # A read overlapping a write may see the old or the new version.
    assert check_register([put(0, 1, None, 10), put(2, 5, 10, 11), get(3, 4, 10)]) is None
    assert check_register([put(0, 1, None, 10), put(2, 5, 10, 11), get(3, 4, 11)]) is None


def test_two_writers_from_one_version_both_succeeding_is_illegal() -> None:
    """What a put that skips the version compare produces: a lost update."""
    ops = [put(0, 1, None, 10), put(2, 4, 10, 11), put(3, 5, 10, 12), get(6, 7, 12)]
    assert check_register(ops) is not None


def test_a_stale_read_after_a_completed_write_is_illegal() -> None:
    ops = [put(0, 1, None, 10), put(2, 3, 10, 11), get(4, 5, 10)]
    why = check_register(ops)
    assert why is not None
    assert "no legal order of 3 operations" in why


def test_a_conflict_at_the_expected_version_is_illegal() -> None:
    ops = [put(0, 1, None, 10), put(2, 3, 10, 11, outcome="conflict"), get(4, 5, 10)]
    assert check_register(ops) is not None


def test_a_write_of_unknown_outcome_may_or_may_not_have_run() -> None:
    lost = put(2, None, 10, 11, outcome="info")
    assert check_register([put(0, 1, None, 10), lost, get(5, 6, 11)]) is None
    assert check_register([put(0, 1, None, 10), lost, get(5, 6, 10)]) is None
    # ... but not both: once its version was seen, the old one cannot come back.
    assert check_register([put(0, 1, None, 10), lost, get(5, 6, 11), get(7, 8, 10)]) is not None


def test_a_delete_must_see_what_it_claims() -> None:
    assert check_register([Op("delete", K, 0, 1)]) is not None  # deleted from an empty register
    ops = [put(0, 1, None, 10), Op("delete", K, 2, 3, outcome="conflict", expected=10)]
    assert check_register(ops) is not None


def test_many_concurrent_reads_are_checked_quickly() -> None:
    """Reads leave the state alone: the search places them greedily, not in every order."""
    ops = [put(0, 1, None, 10)] + [get(2 + i * 0.001, 50, 10) for i in range(200)]
    ops.append(put(3, 60, 10, 11))
    assert check_register(ops) is None


def test_overlapping_lease_holders_are_reported() -> None:
    ok = [Hold(K, "a", 0, 5), Hold(K, "b", 5, 9), Hold("other", "c", 1, 8)]
    assert check_leases(ok) == []
    bad = [Hold(K, "a", 0, 5), Hold(K, "b", 3, 9), Hold(K, "c", 9.5, 10)]
    found = check_leases(bad)
    assert len(found) == 1
    assert "b acquired it at t=3.000 while a held it" in found[0]
    # A hold inside a long one is caught even after a short one in between.
    nested = [Hold(K, "a", 0, 10), Hold(K, "b", 1, 2), Hold(K, "c", 4, 5)]
    assert len(check_leases(nested)) == 2


def test_the_history_reports_both_kinds() -> None:
    history = History()
    history.ops += [put(0, 1, None, 10), put(2, 3, 10, 11), get(4, 5, 10)]
    history.holds += [Hold(K, "a", 0, 5), Hold(K, "b", 1, 2)]
    found = history.check()
    assert [f.split(":")[0] for f in found] == ["linearizability", "lease on idp"]
