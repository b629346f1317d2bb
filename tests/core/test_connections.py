"""The connection lifecycle's decisions as data: which notice is due, at which lead, once."""

from __future__ import annotations

import datetime as dt

import pytest

from aiofinaccess.core.connections import (
    ConnectionRecord,
    ConnectionState,
    Notice,
    NoticeKind,
    Observation,
    decide,
    expiry_step,
    ordered_leads,
    record_state,
)
from aiofinaccess.errors import ValidationError

DAY = 86_400.0
LEADS = ordered_leads([dt.timedelta(days=14), dt.timedelta(days=7), dt.timedelta(days=1)])
END = 1_900_000_000.0
FRESH = ConnectionRecord("finapi", "alice", "42")


class TestExpiryStep:
    @pytest.mark.parametrize(
        ("left", "state", "lead", "deadline"),
        [
            (30 * DAY, ConnectionState.ACTIVE, None, END - 14 * DAY),
            (14 * DAY, ConnectionState.EXPIRING, 14 * DAY, END - 7 * DAY),
            (10 * DAY, ConnectionState.EXPIRING, 14 * DAY, END - 7 * DAY),
            (3 * DAY, ConnectionState.EXPIRING, 7 * DAY, END - DAY),
            (1, ConnectionState.EXPIRING, DAY, END),
            (0, ConnectionState.EXPIRED, None, END),
        ],
    )
    def test_steps(
        self, left: float, state: ConnectionState, lead: float | None, deadline: float
    ) -> None:
        """Each lead is a step; the deadline is the next step or the end."""
        assert expiry_step(END, END - left, LEADS) == (state, lead, deadline)

    def test_leads_must_be_positive(self) -> None:
        """No leads, or one of zero, is a validation error."""
        with pytest.raises(ValidationError):
            ordered_leads([])
        with pytest.raises(ValidationError):
            ordered_leads([dt.timedelta(0)])


def kinds(notices: list[Notice]) -> list[tuple[NoticeKind, float | None, int]]:
    return [(n.kind, n.lead, n.episode) for n in notices]


class TestDecide:
    def test_a_connection_walking_to_its_end_is_announced_at_each_lead_once(self) -> None:
        """14, 7, 1 days, then the end: four notices, none repeated on a second look."""
        record, seen = FRESH, []
        observed = Observation(expires_at=END)
        for left in (30, 14, 13, 7, 6, 1, 0.5, 0, -1):
            now = END - left * DAY
            record, notices = decide(record, observed, now, LEADS)
            again, repeat = decide(record, None, now, LEADS)
            assert (again, repeat) == (record, [])
            seen += kinds(notices)
        assert seen == [
            (NoticeKind.EXPIRING, 14 * DAY, 0),
            (NoticeKind.EXPIRING, 7 * DAY, 0),
            (NoticeKind.EXPIRING, DAY, 0),
            (NoticeKind.RECONNECT, None, 1),
        ]

    def test_first_seen_late_announces_only_the_smallest_lead_reached(self) -> None:
        """Three days before its end: the 7-day notice, not the 14-day one."""
        _, notices = decide(FRESH, Observation(expires_at=END), END - 3 * DAY, LEADS)
        assert kinds(notices) == [(NoticeKind.EXPIRING, 7 * DAY, 0)]

    def test_a_renewed_consent_is_announced_afresh(self) -> None:
        """A new end restarts the leads."""
        record, _ = decide(FRESH, Observation(expires_at=END), END - 3 * DAY, LEADS)
        later = END + 180 * DAY
        record, notices = decide(record, Observation(expires_at=later), later - 10 * DAY, LEADS)
        assert kinds(notices) == [(NoticeKind.EXPIRING, 14 * DAY, 0)]

    @pytest.mark.parametrize(
        "blocked",
        [ConnectionState.ACTION_REQUIRED, ConnectionState.EXPIRED, ConnectionState.REVOKED],
    )
    def test_break_and_repair_are_episodes(self, blocked: ConnectionState) -> None:
        """Broken: one reconnect per episode; fixed: one repair; broken again: episode 2."""
        now = END - 100 * DAY
        record, first = decide(FRESH, Observation(expires_at=END, blocked=blocked), now, LEADS)
        record, none = decide(record, Observation(expires_at=END, blocked=blocked), now, LEADS)
        record, fixed = decide(record, Observation(expires_at=END), now, LEADS)
        record, second = decide(record, Observation(blocked=blocked), now, LEADS)
        assert kinds(first + none + fixed + second) == [
            (NoticeKind.RECONNECT, None, 1),
            (NoticeKind.REPAIRED, None, 1),
            (NoticeKind.RECONNECT, None, 2),
        ]
        assert record_state(record, now, LEADS)[0] is blocked

    def test_two_deciders_name_the_same_notice(self) -> None:
        """Ids come from the record, not from who decides or when."""
        observed = Observation(blocked=ConnectionState.EXPIRED)
        _, one = decide(FRESH, observed, END, LEADS)
        _, other = decide(FRESH, observed, END + 5, LEADS)
        assert (
            [n.id for n in one] == [n.id for n in other] == ["finapi/alice/42|ReconnectRequired|1"]
        )

    def test_records_and_notices_round_trip(self) -> None:
        """What the store keeps reads back equal."""
        record, notices = decide(
            FRESH, Observation(expires_at=END, detail="XS2A"), END - DAY / 2, LEADS
        )
        assert ConnectionRecord.decode(record.encode()) == record
        assert [Notice.decode(n.encode()) for n in notices] == notices
        with pytest.raises(ValidationError):
            ConnectionRecord.decode(b"{}")
        with pytest.raises(ValidationError):
            Notice.decode(b"[")

    def test_an_observation_cannot_block_with_a_healthy_state(self) -> None:
        """``blocked`` names why the user is needed."""
        with pytest.raises(ValidationError):
            Observation(blocked=ConnectionState.ACTIVE)
