"""Everifin's connection end read from the token set and the preset's session maximum."""

from __future__ import annotations

import datetime as dt

import pytest

from aiofinaccess import Everifin, TokenSet
from aiofinaccess.core.connections import ConnectionState
from aiofinaccess.errors import ConfigurationError, ValidationError
from aiofinaccess.everifin import session_state

START = 1_800_000_000.0
LEADS = (dt.timedelta(minutes=10), dt.timedelta(minutes=1))


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(START + seconds, dt.UTC)


def tokens(refresh_in: float | None) -> TokenSet:
    ends = None if refresh_in is None else START + refresh_in
    return TokenSet(access_token="AT", issued_at=START, refresh_token="RT", refresh_expires_at=ends)


@pytest.mark.parametrize(
    ("refresh_in", "session_max", "now", "state", "ended_by", "deadline"),
    [
        (1800, None, 0, ConnectionState.ACTIVE, "refresh_token", 1200),
        (1800, None, 1300, ConnectionState.EXPIRING, "refresh_token", 1740),
        (1800, None, 1800, ConnectionState.EXPIRED, "refresh_token", None),
        (1800, 900, 0, ConnectionState.ACTIVE, "session_max", 300),
        (1800, 900, 850, ConnectionState.EXPIRING, "session_max", 900),
        (None, 900, 950, ConnectionState.EXPIRED, "session_max", None),
        (None, None, 0, ConnectionState.ACTIVE, None, None),
        (900, 900, 850, ConnectionState.EXPIRING, "session_max", 900),
    ],
)
def test_the_earlier_end_decides(  # noqa: PLR0917  (one parameter per column)
    refresh_in: float | None,
    session_max: float | None,
    now: float,
    state: ConnectionState,
    ended_by: str | None,
    deadline: float | None,
) -> None:
    """The refresh token's end or the login's maximum, whichever comes first."""
    status = session_state(
        tokens(refresh_in), at(now), session_max=session_max, started_at=START, leads=LEADS
    )
    assert (status.state, status.ended_by) == (state, ended_by)
    assert status.next_deadline == (None if deadline is None else at(deadline))
    observation = status.observation()
    assert (observation.blocked is ConnectionState.EXPIRED) == (state is ConnectionState.EXPIRED)


def test_session_max_is_a_preset_setting() -> None:
    """Unknown by default (UNCERTAIN for Everifin); configurable; positive only."""
    assert Everifin.stage().session_max is None
    assert Everifin.production(session_max=36_000).session_max == 36_000
    with pytest.raises(ConfigurationError):
        Everifin.stage(session_max=0)


def test_now_must_be_aware() -> None:
    """A naive moment is refused."""
    with pytest.raises(ValidationError):
        session_state(tokens(60), dt.datetime(2030, 1, 1))
