"""A recorded history of store operations and the checks run over it at the end of a world.

Knossos-style, for the two things the SDK asks of a store:

* **Each key is a linearizable compare-and-set register.** Every ``get``, ``put`` (with its
  expected version) and ``delete`` is recorded with its invocation and completion times on
  virtual time; :func:`check_register` searches (Wing & Gong, memoized) for one order of the
  key's operations that respects real time (an operation that completed before another was
  invoked comes first) and in which each answer is what a single register would have given.
  An operation whose outcome is unknown (``completed`` is ``None``) may take effect at any
  moment after its invocation, or never.
* **No two lease holders overlap.** A holder counts on its lease from the moment its
  acquisition returned until it released it or its own deadline passed, whichever came first;
  :func:`check_leases` reports any two such intervals of one key that overlap.

Versions are random 62-bit integers drawn by the store, so a register's state (the version it
holds, or ``None`` for absent) names the write that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

Kind = Literal["get", "put", "delete"]
#: How an operation ended: as asked ("ok"), refused for its expected version ("conflict"),
#: found nothing to delete ("absent"), or unknown to anyone ("info": it may or may not have run).
Outcome = Literal["ok", "conflict", "absent", "info"]


@attrs.frozen
class Op:
    """One operation on one key's register.

    ``get``: ``version`` is what it read (``None``: absent). ``put``: ``expected`` is the
    expected version (``None``: must not exist), ``version`` the new one. ``delete``:
    ``expected`` is the version it insisted on (``None``: any), ``outcome`` "ok" if it deleted.
    """

    kind: Kind
    key: str
    invoked: float
    completed: float | None
    outcome: Outcome = "ok"
    expected: int | None = None
    version: int | None = None
    process: str = ""


@attrs.frozen
class Hold:
    """One holder's lease on ``key``: from ``acquired`` until ``until`` (its release or its
    deadline, the earlier)."""

    key: str
    owner: str
    acquired: float
    until: float


def _step(op: Op, state: int | None) -> tuple[bool, int | None]:
    """Whether ``op`` may run on a register at ``state``, and the state after it."""
    if op.kind == "get":
        return state == op.version, state
    if op.kind == "put":
        if op.outcome == "conflict":
            return state != op.expected, state
        return state == op.expected, op.version
    # delete
    if op.outcome == "absent":
        return state is None, state
    if op.outcome == "conflict":
        return state is not None and state != op.expected, state
    return state is not None and op.expected in (None, state), None


def check_register(ops: Sequence[Op], initial: int | None = None) -> str | None:
    """``None`` if ``ops`` (one key's) are linearizable from ``initial``, else why not."""
    inf = float("inf")
    ops = sorted(ops, key=lambda o: o.invoked)
    ends = [inf if o.completed is None else o.completed for o in ops]
    by_end = sorted(range(len(ops)), key=ends.__getitem__)
    must = 0  # the completed operations, as a bit set: all must be placed
    for index, op in enumerate(ops):
        if op.completed is not None:
            must |= 1 << index
    seen: set[tuple[int, int | None]] = set()
    stack: list[tuple[int, int | None, int]] = [(0, initial, 0)]  # placed, state, depth
    deepest, furthest = -1, 0
    while stack:
        placed, state, depth = stack.pop()
        if placed & must == must:
            return None
        if (placed, state) in seen:
            continue
        seen.add((placed, state))
        if depth > deepest:
            deepest, furthest = depth, placed
        # Only an operation invoked before every unplaced one has completed can go next.
        horizon = next(ends[i] for i in by_end if not placed >> i & 1)
        first = (~placed & (placed + 1)).bit_length() - 1  # the lowest unplaced
        children = []
        for index in range(first, len(ops)):
            op = ops[index]
            if op.invoked > horizon:
                break
            if placed >> index & 1:
                continue
            legal, after = _step(op, state)
            if legal and after == state:
                # Leaves the state as it is: placing it now loses no order (every operation
                # that had to precede it is placed), so it is the only branch worth trying.
                children = [(placed | 1 << index, after, depth + 1)]
                break
            if legal:
                children.append((placed | 1 << index, after, depth + 1))
        stack.extend(children)
    stuck = next(o for i, o in enumerate(ops) if must >> i & 1 and not furthest >> i & 1)
    return (
        f"no legal order of {len(ops)} operations on {ops[0].key}: at best {deepest} placed, "
        f"then none fits {stuck.kind} {stuck.outcome} (expected {stuck.expected}, version "
        f"{stuck.version}) by {stuck.process} at t={stuck.invoked:.3f}-{stuck.completed:.3f}"
    )


def check_leases(holds: Iterable[Hold]) -> list[str]:
    """Every pair of overlapping holds of one key, described."""
    found = []
    by_key: dict[str, list[Hold]] = {}
    for hold in holds:
        by_key.setdefault(hold.key, []).append(hold)
    for key, some in by_key.items():
        some.sort(key=lambda h: h.acquired)
        latest: Hold | None = None  # the hold reaching furthest so far
        for hold in some:
            if latest is not None and hold.acquired < latest.until:
                found.append(
                    f"lease on {key}: {hold.owner} acquired it at t={hold.acquired:.3f} while "
                    f"{latest.owner} held it (t={latest.acquired:.3f} to {latest.until:.3f})"
                )
            if latest is None or hold.until > latest.until:
                latest = hold
    return found


@attrs.define
class History:
    """Every recorded store operation and lease hold of one world."""

    ops: list[Op] = attrs.Factory(list)
    holds: list[Hold] = attrs.Factory(list)

    def check(self) -> list[str]:
        """The violations: a key's non-linearizable history, overlapping lease holders."""
        by_key: dict[str, list[Op]] = {}
        for op in self.ops:
            by_key.setdefault(op.key, []).append(op)
        found = [
            f"linearizability: {why}" for ops in by_key.values() if (why := check_register(ops))
        ]
        return found + check_leases(self.holds)
