"""Tests for aiofinaccess.core.clock: anchoring stored sets and the clock-skew warning
(issue 22, finding 15)."""

from __future__ import annotations

import logging

import pytest

from aiofinaccess.core.clock import SkewWarnings, anchor_stored, clock_offset


class TestAnchorStored:
    def test_an_age_anchors_from_before_the_read_and_ignores_the_wall_clock(self) -> None:
        """Asked at monotonic 100, answered at 100.4: a set 30 s old counts as issued at 70
        (never younger than it is), whatever the reader's wall clock reads."""
        for wall in (0.0, 1e9, -5.0):
            anchor = anchor_stored(1_000.0, 30.0, wall=wall, monotonic=100.4, asked=100.0)
            assert anchor.to_monotonic(1_000.0) == 70.0

    def test_without_an_age_the_reader_anchors_on_its_wall_clock_as_before(self) -> None:
        """Records written before the stamp (or by local stores): today's behaviour."""
        anchor = anchor_stored(1_000.0, None, wall=1_030.0, monotonic=100.4, asked=100.0)
        assert anchor.to_monotonic(1_000.0) == pytest.approx(70.4)


class TestClockOffset:
    def test_with_an_age_the_writers_clock_shows_either_way(self) -> None:
        """Issue time + age = the writer's clock now."""
        assert clock_offset(1_000.0, 10.0, wall=980.0) == 30.0
        assert clock_offset(1_000.0, 10.0, wall=1_040.0) == -30.0

    def test_without_an_age_only_a_future_issue_time_shows(self) -> None:
        assert clock_offset(1_000.0, None, wall=970.0) == 30.0
        assert clock_offset(1_000.0, None, wall=1_500.0) == 0.0


class TestSkewWarnings:
    def test_warns_once_then_at_most_once_an_hour(self, caplog: pytest.LogCaptureFixture) -> None:
        """Within the margin: silence. Beyond: one warning, then one per hour at most."""
        warnings = SkewWarnings(every=3600.0)
        caplog.set_level(logging.WARNING, logger="aiofinaccess")
        assert not warnings.check(0.9, margin=1.0, monotonic=0.0)
        assert warnings.check(30.0, margin=1.0, monotonic=10.0)
        for second in range(11, 3_000, 7):
            assert not warnings.check(-30.0, margin=1.0, monotonic=float(second))
        assert warnings.check(-30.0, margin=1.0, monotonic=3_610.0)
        messages = [record.getMessage() for record in caplog.records]
        assert len(messages) == 2
        assert "30.0 s ahead" in messages[0]
        assert "30.0 s behind" in messages[1]
        assert warnings.repeats == len(range(11, 3_000, 7))
