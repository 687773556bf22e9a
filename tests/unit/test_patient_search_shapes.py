"""Patient searches read through plans shaped for a million patients (a first
name along its own index, a phone number through its trigram index first); they
must still give exactly the rows, in exactly the order, that the plain filter
sorted by the list's key gives, page after page, in both directions."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import Patient
from getmeds_desktop.services import listing

FIRST = ["John", "Johanna", "Jo", "Joseph", "Mary", "Maria", "Marta", "Ann", "Anna", "Tom",
         "Thomas", "Lee", "Garcia", "Le"]
LAST = ["Shapelee", "Shapeleeds", "Shapegarcia", "Shapenguyen", "Shapejohnson", "Lee",
        "Leeward", "Garcia", "Johns", "Marsh"]
SEARCHES = ["jo", "john", "mar", "ann", "t", "lee", "lee, a", "lee le", "garcia m",
            "shapelee jo", "jo shapelee", "shapelee, ma", "maria garcia", "le", "johns, j",
            "shapegarcia t", "555-01", "0199", "217", "5550123", "%", "j_hn"]


@pytest.fixture
def crowd(world):
    made = []
    for i in range(84):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        made.append(world.patient(first, last, phone=f"(217) 555-01{i % 37:02d}",
                                  date_of_birth=dt.date(1950, 1, 1) + dt.timedelta(days=i)))
    with db.write_transaction(world.sf, None) as s:  # some are no longer patients here
        s.execute(sa.update(Patient).where(Patient.id.in_([p.id for p in made[::9]]))
                  .values(active=False))
    return world


def expected(world, text: str, descending: bool) -> list:
    with db.read_session(world.sf) as s:
        dialect = s.get_bind().dialect.name
        key = listing._name_key(dialect)
        q = listing._patient_query(text, dialect).add_columns(key.label("k"))
        order = (key.desc(), Patient.id.desc()) if descending else (key, Patient.id)
        return [r.id for r in s.execute(q.order_by(*order))]


@pytest.mark.parametrize("descending", [False, True])
def test_every_search_shape_pages_like_the_plain_query(crowd, descending):
    for text in SEARCHES:
        rows, after = [], None
        while True:
            page = listing.list_patients(crowd.sf, crowd.clerk, text, descending=descending,
                                         after=after, limit=5)
            rows.extend(page.rows)
            if not page.has_more:
                break
            after = listing.After(page.rows[-1].sort_key, page.rows[-1].id)
        assert [r.id for r in rows] == expected(crowd, text, descending), text
