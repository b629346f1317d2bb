"""Plain records (the small data classes a first token loads) behave as attrs' frozen ones did:
compared and hashed by class and fields, immutable, shown field by field, copied and pickled."""

from __future__ import annotations

import copy
import pickle

import pytest

from aiofinaccess.core.lifecycle import Deadlines
from aiofinaccess.core.renewal_step import Late, Persist, Poison, Situation, TakeLease
from aiofinaccess.core.settings import Duty, Limits, Schedule, Timeouts


def test_equal_by_class_and_fields() -> None:
    assert Late(again=True) == Late(True)
    assert Late(again=True) != Late(again=False)
    assert Persist() == Persist()
    assert Persist() != TakeLease()  # two steps without fields are still different steps
    assert Poison("x") != "x"
    assert len({Persist(), Persist(), Late(True), Late(True)}) == 2
    assert Timeouts(token=10.0) == Timeouts(token=10.0) != Timeouts()


def test_a_situation_is_equal_only_to_itself() -> None:
    situation = Situation(1.0, None)
    assert situation in [situation]
    assert situation != Situation(1.0, None)


def test_immutable() -> None:
    for record, name in ((Late(True), "again"), (Schedule(), "jitter"), (Timeouts(), "patience")):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(record, name, 0)
        with pytest.raises(AttributeError, match="immutable"):
            delattr(record, name)


def test_shown_field_by_field_derived_ones_hidden() -> None:
    assert repr(Poison("dead")) == "Poison(reason='dead')"
    assert repr(Persist()) == "Persist()"
    assert repr(Limits()) == "Limits(concurrent_refreshes=16, working_set=None)"
    assert repr(Timeouts()) == (
        "Timeouts(token=30.0, lease=10.0, store=15.0, close=10.0, pending_write=60.0)"
    )


def test_copied_and_pickled_with_derived_fields() -> None:
    for record in (
        Deadlines(1.0, 2.0, expires_at=3.0),
        Timeouts(lease=20.0),
        Duty(batch=5),
        Late(again=False),
    ):
        for twin in (copy.copy(record), copy.deepcopy(record), pickle.loads(pickle.dumps(record))):  # noqa: S301
            assert twin == record
            assert repr(twin) == repr(record)
    assert copy.deepcopy(Timeouts(lease=20.0)).patience == Timeouts(lease=20.0).patience == 70.0


def test_settings_take_keywords_only() -> None:
    with pytest.raises(TypeError):
        Timeouts(10.0)  # type: ignore[call-arg]
