"""A new patient who looks like one already registered is not registered a
second time without the user saying it is another person."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import Patient
from getmeds_desktop.services import patients
from getmeds_desktop.services.errors import PossibleDuplicate
from getmeds_desktop.services.patients import PatientDraft

BORN = dt.date(1985, 3, 4)


def _new(world, first, last, born=BORN, **kw):
    return patients.create_patient(world.sf, world.clerk, PatientDraft(
        first_name=first, last_name=last, date_of_birth=born, no_known_allergies=True), **kw)


def _count(world) -> int:
    with db.read_session(world.sf) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Patient))


@pytest.mark.parametrize(("first", "last", "born", "why"), [
    ("John", "Smith", BORN, "same name and date of birth"),
    ("john", "SMITH", BORN, "same name and date of birth"),
    ("Jon", "Smyth", BORN, "nearly the same name and date of birth"),
    ("Smith", "John", BORN, "first and last name swapped and date of birth"),
    ("John", "Smith", dt.date(1985, 4, 3), "same name, day and month of birth swapped"),
])
def test_a_look_alike_is_refused_with_the_candidates(world, first, last, born, why):
    original = patients.create_patient(world.sf, world.clerk, PatientDraft(
        first_name="John", last_name="Smith", date_of_birth=BORN,
        allergies=[patients.AllergyDraft("Penicillin")]))
    before = _count(world)
    with pytest.raises(PossibleDuplicate, match="may already be registered: John Smith") as exc:
        _new(world, first, last, born)
    [c] = exc.value.candidates
    assert (c.id, c.allergies, c.why) == (original.id, 1, why)
    assert _count(world) == before  # nothing written
    # the user says it is another person: registered
    assert _new(world, first, last, born, another_person=True).id != original.id


@pytest.mark.parametrize(("first", "last", "born"), [
    ("Mary", "Jones", BORN),  # another name
    ("John", "Smith", dt.date(1985, 3, 5)),  # another day
    ("Bob", "Smith", BORN),  # another first name
])
def test_different_people_are_registered_without_asking(world, first, last, born):
    _new(world, "John", "Smith")
    _new(world, first, last, born)
