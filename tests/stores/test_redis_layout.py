"""The Redis store's key layout and claim split: pure functions, no server."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiofinaccess import TokenKey
from aiofinaccess.stores._redis_layout import Layout, allocate, stamped

ALICE = TokenKey("everifin", "alice")


def hash_tag(name: str) -> str:
    """What Redis Cluster hashes: the text between the first ``{`` and the next ``}``."""
    start = name.find("{")
    end = name.find("}", start + 1)
    return name[start + 1 : end] if start >= 0 and end > start + 1 else name


def test_the_single_node_layout_is_the_old_one_plus_due_sets() -> None:
    layout = Layout("app:", 64, cluster=False)
    shard = layout.shard(ALICE)
    assert layout.names(ALICE) == [
        f"app:ts:{ALICE}",
        "app:keys:everifin",
        "app:providers",
        f"app:due:everifin:{shard}",  # one due set per provider and shard (issue 22)
    ]
    assert layout.lease(ALICE) == f"app:lease:{ALICE}"
    assert layout.channels() == ["app:changes"]
    assert layout.bases() == ["app:"]


def test_every_name_of_a_set_shares_one_hash_tag_in_a_cluster() -> None:
    """Record, index, providers, due set, lease and channel: one slot per shard."""
    layout = Layout("{app}:", 64, cluster=True)  # braces in the prefix must not end the tag
    shard = layout.shard(ALICE)
    names = [*layout.names(ALICE), layout.lease(ALICE), layout.channel(shard)]
    assert {hash_tag(name) for name in names} == {f"app:s{shard}"}
    assert len({hash_tag(base) for base in layout.bases()}) == 64
    assert len(layout.channels()) == 64


def test_the_shard_is_stable_and_spreads() -> None:
    layout = Layout("app:", 64, cluster=True)
    assert layout.shard(ALICE) == layout.shard(str(ALICE)) == Layout("x:", 64, False).shard(ALICE)
    counts = [0] * 64
    for n in range(6400):
        counts[layout.shard(TokenKey("everifin", f"user-{n}"))] += 1
    assert min(counts) > 50
    assert max(counts) < 160


def test_allocate_serves_the_most_overdue_shard_first_then_fair_shares() -> None:
    heads = {3: (10.0, 100), 5: (1.0, 2), 9: (5.0, 100)}
    assert allocate(heads, 1) == {5: 1}
    assert allocate(heads, 5) == {5: 2, 9: 2, 3: 1}
    assert allocate(heads, 100) == {5: 2, 9: 49, 3: 49}
    assert allocate(heads, 1000) == {5: 2, 9: 100, 3: 100}
    assert allocate({}, 10) == {}


@given(
    st.dictionaries(
        st.integers(0, 63),
        st.tuples(st.floats(0, 1e6, allow_nan=False), st.integers(1, 50)),
        max_size=64,
    ),
    st.integers(1, 500),
)
def test_allocate_takes_exactly_what_is_asked_or_all_there_is(
    heads: dict[int, tuple[float, int]], limit: int
) -> None:
    plan = allocate(heads, limit)
    assert sum(plan.values()) == min(limit, sum(count for _, count in heads.values()))
    assert all(0 < plan[shard] <= heads[shard][1] for shard in plan)
    if heads:
        earliest = min(due for due, _ in heads.values())
        assert any(heads[shard][0] == earliest for shard in plan)


class TestStamped:
    """The GET script's reply: version, data, stamp, TIME (issue 22, finding 15)."""

    def test_a_stamp_of_the_records_version_gives_its_age_on_the_stores_clock(self) -> None:
        """Written at 1000.5 when 3 s old; Redis's clock now 1010.25: 12.75 s old."""
        reply = [b"7", b"{}", b"7 1000.500000 3.0", b"1010", b"250000"]
        assert stamped(reply) == (7, b"{}", 12.75, 0.0)

    def test_a_stamp_keeps_the_part_of_the_age_that_was_the_writes_transit(self) -> None:
        """Stamped 3.2 s old of which 0.2 s the write's transit (or the writer's clock behind
        Redis's): the age counts it, and the reader learns how much of it that was."""
        reply = [b"7", b"{}", b"7 1000.500000 3.200000 0.200000", b"1010", b"250000"]
        assert stamped(reply) == (7, b"{}", 12.95, 0.2)

    def test_a_stamp_of_another_version_or_none_or_garbage_gives_no_age(self) -> None:
        """An earlier version's write left the stamp, or never wrote one: read as before."""
        for stamp in (b"6 1000.5 3.0", None, b"7 soon 3.0", b"7 1000.5", b"7 1000.5 3.0 x"):
            assert stamped([b"7", b"{}", stamp, b"1010", b"0"]) == (7, b"{}", None, 0.0)

    def test_a_clock_that_stepped_back_never_makes_a_set_younger_than_at_its_write(self) -> None:
        assert stamped(["7", "{}", "7 1000.0 3.0", "990", "0"]) == (7, b"{}", 3.0, 0.0)

    def test_no_record_is_none(self) -> None:
        assert stamped([None, None, None, b"1010", b"0"]) is None
