"""What fleet.py plans and how it reads what happened: pure functions, no I/O.

The plan: M token sets, one per user ``u{i}``, each backed by a Keycloak session seeded in the
sandbox with the very tokens the store holds, so the first renewal of every set is an ordinary
rotation. Their due times are spread evenly (golden-ratio steps) over one renewal interval
starting at ``first_due``, so the fleet renews at the planned rate from the first second.

The record: every process that renews (workers, the load process) appends one line per event
to its own file, unbuffered, so a process killed with SIGKILL loses nothing it did::

    f <wall>                                its first claim_due call (start-up ends)
    c <wall> <claim deadline> <i>,<i>,...   claim_due handed it these sets
    p <wall> <i> <due_at or ->              it stored a renewed set of user i, due then
    s <wall> <i> <due_at or ->              it rescheduled set i without renewing it

The sandbox keeps a journal of every refresh grant: ``[wall, session id, status]``. Joined
with the due times (seeded, then each renewal's), every token request is attributed to the due
event it served: the request for set ``i`` at time ``t`` belongs to the latest due time of ``i``
at or before ``t``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiofinaccess import RefreshPolicy
from aiofinaccess.core.tokens import Anchor, TokenSet, parse_token_response

#: The golden ratio's fraction: index * it mod 1 spreads indices evenly over [0, 1).
_SPREAD = 0.6180339887498949
#: Refresh-token lifetime the sandbox is told (SSO idle and max): nothing idles out.
SSO_SECONDS = 10 * 86400


#: SessionManager's default jitter: a set falls due between 1 and 1 + JITTER leads before expiry.
JITTER = 0.2


def ahead(ttl: float, policy: RefreshPolicy) -> float:
    """How long before expiry a set falls due on average (the lead, plus half the jitter)."""
    return policy.lead(ttl) * (1 + JITTER / 2)


def lifetime_for(sets: int, rate: float, policy: RefreshPolicy) -> int:
    """The whole-second access-token lifetime that renews ``sets`` sets nearest ``rate``/s."""
    return min(range(3, 1_000_000), key=lambda ttl: abs(sets / (ttl - ahead(ttl, policy)) - rate))


@dataclass(frozen=True)
class Plan:
    """The seeded sets: their tokens, expiries and due times (wall clock)."""

    sets: int
    ttl: int
    #: How long before expiry the seeded sets are due (the mean of what the SDK plans).
    lead: float
    first_due: float
    nonce: str

    @property
    def interval(self) -> float:
        """Mean time between two renewals of one set (``lead``: how long before expiry)."""
        return self.ttl - self.lead

    @property
    def rate(self) -> float:
        return self.sets / self.interval

    def due(self, index: int) -> float:
        return self.first_due + self.interval * ((index * _SPREAD) % 1.0)

    def expiry(self, index: int) -> float:
        return self.due(index) + self.lead

    def session_id(self, index: int) -> str:
        return f"{self.nonce}-{index}"

    def index_of_session(self, session_id: object) -> int | None:
        """The set index of a sandbox session id of this plan (``None``: another's)."""
        prefix = self.nonce + "-"
        if isinstance(session_id, str) and session_id.startswith(prefix):
            return int(session_id[len(prefix) :])
        return None

    def tokens(self, index: int) -> tuple[str, str]:
        return f"kc_at_{self.nonce}_{index:08d}", f"kc_rt_{self.nonce}_{index:08d}"

    def sandbox_row(self, index: int) -> list[Any]:
        """``[session id, access token, refresh token, access expiry]`` for the sandbox."""
        access, refresh = self.tokens(index)
        return [self.session_id(index), access, refresh, self.expiry(index)]

    def token_set(self, index: int) -> TokenSet:
        """The store's copy: parsed from a body shaped like the sandbox's token answers."""
        access, refresh = self.tokens(index)
        body = {
            "access_token": access,
            "expires_in": self.ttl,
            "refresh_expires_in": SSO_SECONDS,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": self.session_id(index),
            "scope": "ais",
        }
        issued = self.expiry(index) - self.ttl
        # Its age now, on this process's clocks: an anchor pairs a wall time with the monotonic
        # reading of the same moment (pairing it with itself made every seeded set 0 s old at
        # its write, its expiry up to a lifetime late in every reader's eyes).
        return parse_token_response(
            body, sent=Anchor.aged(issued, time.time() - issued, time.monotonic())
        )


def subject(index: int) -> str:
    return f"u{index}"


def index_of(subject_text: str | None) -> int | None:
    if subject_text and subject_text.startswith("u") and subject_text[1:].isdigit():
        return int(subject_text[1:])
    return None


# -- the record --------------------------------------------------------------------------------


def claim_line(wall: float, deadline: float, indices: Iterable[int]) -> bytes:
    return f"c {wall:.6f} {deadline:.6f} {','.join(map(str, indices))}\n".encode()


def put_line(wall: float, index: int, due_at: float | None) -> bytes:
    due = "-" if due_at is None else f"{due_at:.6f}"
    return f"p {wall:.6f} {index} {due}\n".encode()


@dataclass(frozen=True)
class Put:
    wall: float
    index: int
    due_at: float | None
    process: str


@dataclass(frozen=True)
class Claim:
    wall: float
    deadline: float
    indices: tuple[int, ...]


@dataclass
class Record:
    """Everything one process wrote."""

    process: str
    puts: list[Put] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    #: Due times set without a renewal (a claimed set renewed elsewhere, a dead grant).
    reschedules: list[Put] = field(default_factory=list)


def parse_record(process: str, text: str) -> Record:
    record = Record(process)
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        parts = rest.split(" ")
        if kind in ("p", "s") and len(parts) == 3:
            due = None if parts[2] == "-" else float(parts[2])
            put = Put(float(parts[0]), int(parts[1]), due, process)
            (record.puts if kind == "p" else record.reschedules).append(put)
        elif kind == "c" and len(parts) == 3:
            indices = tuple(int(i) for i in parts[2].split(",") if i)
            record.claims.append(Claim(float(parts[0]), float(parts[1]), indices))
    return record


# -- reading it --------------------------------------------------------------------------------


def chains(plan: Plan, records: Iterable[Record]) -> dict[int, list[Put]]:
    """Each set's renewals (stored puts) in time order."""
    result: dict[int, list[Put]] = defaultdict(list)
    for record in records:
        for put in record.puts:
            result[put.index].append(put)
    for puts in result.values():
        puts.sort(key=lambda put: put.wall)
    return result


def due_times(plan: Plan, index: int, puts: Sequence[Put]) -> list[float]:
    """Set ``index``'s due times: the seeded one, then each renewal's (inf = unscheduled)."""
    return [plan.due(index), *(math.inf if p.due_at is None else p.due_at for p in puts)]


@dataclass
class Renewals:
    """Due events in a window and how they were served."""

    due_events: int = 0
    renewed: int = 0
    unrenewed: int = 0
    lateness: list[float] = field(default_factory=list)
    served: int = 0
    token_requests: int = 0
    successful_requests: int = 0
    done_twice: int = 0
    premature_requests: int = 0
    by_process: Counter[str] = field(default_factory=Counter)


def renewals(
    plan: Plan,
    chained: Mapping[int, Sequence[Put]],
    journal: Sequence[Sequence[Any]],
    *,
    start: float,
    end: float,
    settle: float,
) -> Renewals:
    """Due events with due time in ``[start, end)``: lateness, token requests, doubles.

    A due event is *unrenewed* if no renewal was stored by ``end + settle``. Lateness is the
    time the renewed set was stored minus its due time. Token requests are the sandbox's
    refresh grants for the set between this due time and the next one. A renewal done twice
    is a successful grant less than half a renewal interval after the set's previous one,
    anywhere in the journal: read from the sandbox alone, so a record line lost to SIGKILL
    (a write that landed in Redis as the process died) cannot fake one.
    """
    requests: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for wall, session_id, status in journal:
        if (index := plan.index_of_session(session_id)) is not None:
            requests[index].append((float(wall), int(status)))
    result = Renewals()
    for index in range(plan.sets):
        puts = chained.get(index, ())
        dues = due_times(plan, index, puts)
        grants = sorted(requests.get(index, ()))
        times = [wall for wall, _ in grants]
        result.premature_requests += bisect.bisect_left(times, dues[0])
        for j, due in enumerate(dues):
            if not start <= due < end:
                continue
            result.due_events += 1
            if j < len(puts) and puts[j].wall <= end + settle:
                result.renewed += 1
                result.lateness.append(puts[j].wall - due)
                result.by_process[puts[j].process] += 1
            else:
                result.unrenewed += 1
            following = dues[j + 1] if j + 1 < len(dues) else math.inf
            low = bisect.bisect_left(times, due)
            high = bisect.bisect_left(times, min(following, end + settle))
            served = grants[low:high]
            ok = sum(1 for _, status in served if status == 200)
            result.token_requests += len(served)
            result.successful_requests += ok
            # Renewed, or at least rotated at the sandbox (its write may land after the window).
            result.served += 1 if ok or (j < len(puts) and puts[j].wall <= end + settle) else 0
    result.done_twice = _doubles(grants_of=requests, within=plan.interval / 2)
    return result


def _doubles(grants_of: Mapping[int, list[tuple[float, int]]], within: float) -> int:
    doubles = 0
    for grants in grants_of.values():
        times = sorted(wall for wall, status in grants if status == 200)
        doubles += sum(1 for a, b in itertools.pairwise(times) if b - a < within)
    return doubles


@dataclass
class Orphans:
    """The sets a killed worker had claimed and not stored, and what became of them."""

    claimed: int = 0
    renewed_by_others: int = 0
    after_deadline: list[float] = field(default_factory=list)
    not_renewed: int = 0
    rotated_at_death: int = 0
    #: Not renewed, and rotated by the sandbox for the killed worker as it died: its new
    #: refresh token died with it (promise 3's window; only a provider that allows one reuse
    #: of the token used last, Keycloak's "Refresh Token Max Reuse" >= 1, lets a successor on).
    lost_in_window: int = 0


def orphans(
    killed: Record,
    others: Iterable[Record],
    journal: Sequence[Sequence[Any]],
    plan: Plan,
    *,
    killed_at: float,
) -> Orphans:
    """Sets the killed worker held (claimed, not stored) when it died, and how late others
    renewed each relative to its claim deadline (``after_deadline``, seconds; <= 1 is the
    target). ``rotated_at_death``: sets the sandbox rotated for the killed worker as it died,
    with no stored renewal in its record: either its write landed in Redis unrecorded, or the
    new refresh token died with it, and the set is lost (the end-of-run check and the reuse
    violations tell which)."""
    holding = held(killed, killed_at)
    later: dict[int, float] = {}
    for record in others:
        for put in record.puts:
            if put.index in holding and put.wall > killed_at:
                later[put.index] = min(later.get(put.index, math.inf), put.wall)
    result = Orphans(claimed=len(holding))
    rotated: set[int] = set()
    for wall, session_id, status in journal:
        index = plan.index_of_session(session_id)
        # A request the sandbox took in just before or as the worker died.
        if status == 200 and index in holding and holding[index][0] <= wall <= killed_at + 0.5:
            rotated.add(index)
    result.rotated_at_death = len(rotated)
    for index, (_, claim_deadline) in holding.items():
        if index in later:
            result.renewed_by_others += 1
            result.after_deadline.append(later[index] - claim_deadline)
        else:
            result.not_renewed += 1
            result.lost_in_window += index in rotated
    return result


def held(killed: Record, killed_at: float) -> dict[int, tuple[float, float]]:
    """index -> (claimed at, claim deadline) of what ``killed`` had claimed and not stored."""
    held: dict[int, tuple[float, float]] = {}
    events = sorted(
        [(c.wall, 0, c) for c in killed.claims]
        + [(p.wall, 1, p) for p in (*killed.puts, *killed.reschedules)],
        key=lambda event: (event[0], event[1]),
    )
    for wall, _, event in events:
        if wall > killed_at:
            break
        if isinstance(event, Claim):
            for index in event.indices:
                held[index] = (event.wall, event.deadline)
        else:
            held.pop(event.index, None)
    return held
