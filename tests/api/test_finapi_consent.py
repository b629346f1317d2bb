"""finAPI consent state: the interfaces read from both versions' shapes, and the connection's
state derived from them at a given moment, tested as data (see tests/api/test_finapi_tasks.py
for the sandbox's side)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aiofinaccess.api.finapi.models import decode, read_finapi
from aiofinaccess.connections import ConnectionState
from aiofinaccess.core.errors import UnexpectedResponseError, ValidationError
from aiofinaccess.finapi import (
    BankConnection,
    BankConnectionInterface,
    BankConsent,
    ConnectionStatus,
    UpdateResult,
    connection_state,
)

UTC = dt.UTC
DAY = dt.timedelta(days=1)
END = dt.datetime(2026, 7, 1, 12, tzinfo=UTC)

V1_CONNECTION = b"""{
  "id": 5, "bankId": 280001, "name": "Giro", "updateStatus": "READY",
  "lastManualUpdate": {"result": "BANK_SERVER_REJECTION", "errorMessage": "PIN falsch",
                       "errorType": "BUSINESS", "timestamp": "2026-03-01 10:00:00.000"},
  "lastAutoUpdate": null,
  "interfaces": [{
    "interface": "XS2A", "loginCredentials": [], "defaultTwoStepProcedureId": null,
    "twoStepProcedures": [],
    "aisConsent": {"status": "PRESENT", "expiresAt": "2026-07-01 14:00:00.000"},
    "lastManualUpdate": {"result": "OK", "errorMessage": null, "errorType": null,
                         "timestamp": "2026-03-02 09:30:00.000"},
    "lastAutoUpdate": null, "userActionRequired": false, "maxDaysForDownload": 0
  }, {
    "interface": "FINTS_SERVER", "aisConsent": null, "lastManualUpdate": null,
    "lastAutoUpdate": null, "userActionRequired": true, "maxDaysForDownload": 90
  }],
  "accountIds": [1, 2]
}"""
V2_CONNECTION = b"""{
  "id": 5, "name": "Giro", "updateStatus": "READY", "accountIds": [1, 2],
  "interfaces": [{
    "bankingInterface": "XS2A", "loginCredentials": [], "twoStepProcedures": [],
    "aisConsent": {"status": "PRESENT", "expiresAt": "2026-07-01T14:00:00.000+02:00",
                   "supportsImportNewAccounts": true},
    "lastManualUpdate": {"result": "OK", "timestamp": "2026-03-02T09:30:00.000+01:00"},
    "userActionRequired": false, "maxDaysForDownload": 0
  }, {
    "bankingInterface": "FINTS_SERVER", "userActionRequired": true, "maxDaysForDownload": 90
  }]
}"""


def read(body: bytes) -> BankConnection:
    return read_finapi(decode(body, "c"), BankConnection, what="c")


class TestInterfaces:
    def test_v1_and_v2_read_the_same(self) -> None:
        """v1's ``interface`` and German time, v2's ``bankingInterface`` and RFC 3339."""
        v1, v2 = read(V1_CONNECTION), read(V2_CONNECTION)
        assert v1.interfaces == v2.interfaces
        xs2a, fints = v1.interfaces
        assert xs2a == BankConnectionInterface(
            "XS2A",
            BankConsent("PRESENT", END),
            user_action_required=False,
            last_manual_update=UpdateResult("OK", dt.datetime(2026, 3, 2, 8, 30, tzinfo=UTC)),
            max_days_for_download=0,
        )
        assert fints.ais_consent is None
        assert fints.user_action_required
        assert xs2a.last_manual_update is not None
        assert xs2a.last_manual_update.ok

    def test_v1_keeps_the_connections_own_last_updates(self) -> None:
        connection = read(V1_CONNECTION)
        assert connection.last_manual_update == UpdateResult(
            "BANK_SERVER_REJECTION",
            dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
            error_type="BUSINESS",
            error_message="PIN falsch",
        )
        assert connection.last_auto_update is None
        assert not connection.last_manual_update.ok
        assert read(V2_CONNECTION).last_manual_update is None

    @pytest.mark.parametrize(
        "interface",
        [
            {"interface": "XS2A", "userActionRequired": "false"},
            {"interface": "XS2A", "userActionRequired": 0},
            {"interface": "XS2A", "aisConsent": {"expiresAt": "2026-07-01"}},
            {"interface": "XS2A", "aisConsent": {"status": "PRESENT", "expiresAt": "01.07.2026"}},
            {"interface": "XS2A", "aisConsent": "PRESENT"},
            {"interface": "XS2A", "lastAutoUpdate": {"result": "OK"}},
            {"userActionRequired": True},
            {"interface": "XS2A", "maxDaysForDownload": "ninety"},
        ],
    )
    def test_unreadable_interfaces_are_typed_errors(self, interface: dict[str, Any]) -> None:
        """A JSON boolean only, a readable time, the required fields."""
        with pytest.raises(UnexpectedResponseError):
            read_finapi({"id": 1, "interfaces": [interface]}, BankConnection, what="c")


def connection(*interfaces: BankConnectionInterface) -> BankConnection:
    return BankConnection(id=1, interfaces=interfaces)


def xs2a(
    expires: dt.datetime | None = END, status: str = "PRESENT", *, action: bool = False
) -> BankConnectionInterface:
    return BankConnectionInterface(
        "XS2A", BankConsent(status, expires), user_action_required=action
    )


FINTS = BankConnectionInterface("FINTS_SERVER")


@pytest.mark.parametrize(
    ("now", "interfaces", "want"),
    [
        (
            END - 30 * DAY,
            [xs2a()],
            ConnectionStatus(ConnectionState.ACTIVE, END, next_deadline=END - 14 * DAY),
        ),
        (
            END - 14 * DAY,  # a lead is reached at its very moment
            [xs2a()],
            ConnectionStatus(ConnectionState.EXPIRING, END, 14 * DAY, END - 7 * DAY, "XS2A"),
        ),
        (
            END - 10 * DAY,
            [xs2a(), FINTS],
            ConnectionStatus(ConnectionState.EXPIRING, END, 14 * DAY, END - 7 * DAY, "XS2A"),
        ),
        (
            END - 3 * DAY,
            [xs2a()],
            ConnectionStatus(ConnectionState.EXPIRING, END, 7 * DAY, END - DAY, "XS2A"),
        ),
        (
            END - dt.timedelta(hours=5),
            [xs2a()],
            ConnectionStatus(ConnectionState.EXPIRING, END, DAY, END, "XS2A"),
        ),
        (END, [xs2a()], ConnectionStatus(ConnectionState.EXPIRED, END, interface="XS2A")),
        (
            END - 30 * DAY,
            [xs2a(status="NOT_PRESENT")],
            ConnectionStatus(ConnectionState.EXPIRED, END, interface="XS2A"),
        ),
        (
            END - 30 * DAY,
            [xs2a(action=True)],
            ConnectionStatus(ConnectionState.ACTION_REQUIRED, END, None, END, "XS2A"),
        ),
        (
            END - 3 * DAY,  # the flag outranks a near end: the user must come either way
            [xs2a(), BankConnectionInterface("FINTS_SERVER", user_action_required=True)],
            ConnectionStatus(ConnectionState.ACTION_REQUIRED, END, None, END, "FINTS_SERVER"),
        ),
        (
            END + DAY,  # an ended consent outranks the flag
            [xs2a(action=True)],
            ConnectionStatus(ConnectionState.EXPIRED, END, interface="XS2A"),
        ),
        (
            END - 3 * DAY,  # the earliest of two consents decides
            [xs2a(END + 90 * DAY), xs2a(END)],
            ConnectionStatus(ConnectionState.EXPIRING, END, 7 * DAY, END - DAY, "XS2A"),
        ),
        (END, [], ConnectionStatus(ConnectionState.ACTIVE)),
        (END, [FINTS, xs2a(None)], ConnectionStatus(ConnectionState.ACTIVE)),
    ],
)
def test_connection_state(
    now: dt.datetime, interfaces: list[BankConnectionInterface], want: ConnectionStatus
) -> None:
    """State, lead and next deadline at one moment, for the default leads (14, 7, 1 days)."""
    assert connection_state(connection(*interfaces), now) == want


def test_walking_to_the_end_crosses_each_lead_once() -> None:
    """Following ``next_deadline`` from 200 days before the end visits each state once."""
    now = END - 200 * DAY
    seen = []
    while True:
        status = connection_state(connection(xs2a()), now)
        seen.append((status.state, status.lead))
        if status.next_deadline is None:
            break
        assert status.next_deadline > now
        now = status.next_deadline
    assert seen == [
        (ConnectionState.ACTIVE, None),
        (ConnectionState.EXPIRING, 14 * DAY),
        (ConnectionState.EXPIRING, 7 * DAY),
        (ConnectionState.EXPIRING, DAY),
        (ConnectionState.EXPIRED, None),
    ]


def test_leads_are_configurable() -> None:
    """Any order, repeats ignored; the time zone of ``now`` does not matter."""
    now = (END - 20 * DAY).astimezone(dt.timezone(dt.timedelta(hours=-7)))
    status = connection_state(connection(xs2a()), now, leads=[DAY, 30 * DAY, 30 * DAY])
    assert status == ConnectionStatus(ConnectionState.EXPIRING, END, 30 * DAY, END - DAY, "XS2A")


@pytest.mark.parametrize(
    ("now", "leads"),
    [
        (dt.datetime(2026, 1, 1), [DAY]),  # naive
        (END, []),
        (END, [DAY, dt.timedelta(0)]),
        (END, [-DAY]),
    ],
)
def test_refusals(now: dt.datetime, leads: list[dt.timedelta]) -> None:
    with pytest.raises(ValidationError):
        connection_state(connection(xs2a()), now, leads=leads)


def test_deadlines_are_exact_across_daylight_saving_time() -> None:
    """v1's Berlin time in summer, a lead reached in winter: 14 days of 24 hours, not of the
    wall clock (which would be an hour late)."""
    end = dt.datetime(2026, 4, 5, 12, tzinfo=ZoneInfo("Europe/Berlin"))  # 10:00 UTC
    status = connection_state(connection(xs2a(end)), dt.datetime(2026, 3, 1, tzinfo=UTC))
    assert status.next_deadline == dt.datetime(2026, 3, 22, 10, tzinfo=UTC)
    assert status.expires_at == dt.datetime(2026, 4, 5, 10, tzinfo=UTC)
