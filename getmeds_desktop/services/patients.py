"""Patients with their allergies and conditions, prescribers, and patient feedback."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import difflib
import re
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .. import db
from ..enums import AllergyStatus
from ..models import (
    LegacyDispense,
    LegacyPrescription,
    Patient,
    PatientAllergy,
    PatientCondition,
    PatientFeedback,
    Prescriber,
    Severity,
    Sex,
    Staff,
)
from . import clock, uow
from ._common import Query, text
from .context import Actor, Perm, require
from .errors import NotFound, PossibleDuplicate, ValidationError
from .identifiers import clean_dea, clean_email, clean_npi, clean_phone


@dataclasses.dataclass(frozen=True)
class AllergyDraft:
    allergen: str
    reaction: str | None = None
    severity: Severity | str = Severity.UNKNOWN
    intolerance: bool = False  # a side effect recorded as such, not an allergy


@dataclasses.dataclass(frozen=True)
class ConditionDraft:
    name: str
    notes: str | None = None


@dataclasses.dataclass(frozen=True)
class PatientDraft:
    first_name: str
    last_name: str
    date_of_birth: dt.date | None
    sex: Sex | str = Sex.UNKNOWN
    phone: str | None = None
    email: str | None = None
    address_line: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    notes: str | None = None
    allergies: Sequence[AllergyDraft] = ()
    conditions: Sequence[ConditionDraft] = ()
    # asked, and the patient has none (with no allergies listed); neither: not asked
    no_known_allergies: bool = False
    pregnant: bool = False
    breastfeeding: bool = False


@dataclasses.dataclass(frozen=True)
class PatientInfo:
    id: uuid.UUID
    first_name: str
    last_name: str
    date_of_birth: dt.date
    sex: Sex
    phone: str | None
    email: str | None
    address_line: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    notes: str | None
    active: bool
    allergies: tuple[AllergyDraft, ...]
    conditions: tuple[ConditionDraft, ...]
    version: int
    updated_by: str | None
    updated_at: dt.datetime
    allergy_status: AllergyStatus = AllergyStatus.NOT_ASKED
    allergy_status_by: str | None = None  # who recorded the allergy status, and when
    allergy_status_at: dt.datetime | None = None
    pregnant: bool = False
    breastfeeding: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def address(self) -> str:
        city_line = " ".join(x for x in (self.city, self.state, self.postal_code) if x)
        return ", ".join(x for x in (self.address_line, city_line) if x)

    def age_on(self, day: dt.date) -> int:
        b = self.date_of_birth
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))

    def draft(self) -> PatientDraft:
        return PatientDraft(
            first_name=self.first_name, last_name=self.last_name,
            date_of_birth=self.date_of_birth, sex=self.sex, phone=self.phone, email=self.email,
            address_line=self.address_line, city=self.city, state=self.state,
            postal_code=self.postal_code, notes=self.notes, allergies=self.allergies,
            conditions=self.conditions,
            no_known_allergies=self.allergy_status is AllergyStatus.NO_KNOWN_ALLERGIES,
            pregnant=self.pregnant, breastfeeding=self.breastfeeding,
        )


def _patient_info(p: Patient) -> PatientInfo:
    return PatientInfo(
        id=p.id, first_name=p.first_name, last_name=p.last_name,
        date_of_birth=p.date_of_birth, sex=p.sex, phone=p.phone, email=p.email,
        address_line=p.address_line, city=p.city, state=p.state, postal_code=p.postal_code,
        notes=p.notes, active=p.active,
        allergies=tuple(AllergyDraft(a.allergen, a.reaction, a.severity, a.intolerance)
                        for a in p.allergies),
        conditions=tuple(ConditionDraft(c.name, c.notes) for c in p.conditions),
        version=p.version, updated_by=p.updated_by, updated_at=p.updated_at,
        allergy_status=p.allergy_status, allergy_status_by=p.allergy_status_by,
        allergy_status_at=p.allergy_status_at, pregnant=p.pregnant,
        breastfeeding=p.breastfeeding,
    )


def _clean_patient(d: PatientDraft) -> dict[str, Any]:
    if not isinstance(d.date_of_birth, dt.date):
        raise ValidationError("Date of birth is required.", field="date_of_birth")
    today = clock.today()
    if d.date_of_birth > today:
        raise ValidationError("Date of birth cannot be in the future.", field="date_of_birth")
    if d.date_of_birth < dt.date(today.year - 130, 1, 1):
        raise ValidationError("Date of birth is more than 130 years ago.", field="date_of_birth")
    try:
        sex = Sex(d.sex)
    except ValueError:
        raise ValidationError("Sex must be female, male, other or unknown.", field="sex") from None
    allergies: list[AllergyDraft] = []
    for a in d.allergies:
        name = text(a.allergen, "allergies", "Allergen", max_len=120)
        if name.lower() in {x.allergen.lower() for x in allergies}:
            raise ValidationError(f"Allergy to {name} is listed twice.", field="allergies")
        try:
            sev = Severity(a.severity or Severity.UNKNOWN)
        except ValueError:
            raise ValidationError("Allergy severity is not valid.", field="allergies") from None
        allergies.append(AllergyDraft(
            name, text(a.reaction, "allergies", "Reaction", required=False), sev,
            bool(a.intolerance)))
    if allergies and d.no_known_allergies:
        raise ValidationError("Allergies are listed, so the patient cannot also have \"no known "
                              "allergies\": remove one or the other.", field="allergies")
    status = (AllergyStatus.RECORDED if allergies else AllergyStatus.NO_KNOWN_ALLERGIES
              if d.no_known_allergies else AllergyStatus.NOT_ASKED)
    if (d.pregnant or d.breastfeeding) and sex is Sex.MALE:
        raise ValidationError("Pregnancy and breastfeeding are recorded only for patients "
                              "whose sex is not male.", field="pregnant")
    conditions: list[ConditionDraft] = []
    for c in d.conditions:
        name = text(c.name, "conditions", "Condition", max_len=200)
        if name.lower() in {x.name.lower() for x in conditions}:
            raise ValidationError(f"Condition {name} is listed twice.", field="conditions")
        conditions.append(ConditionDraft(
            name, text(c.notes, "conditions", "Condition notes", required=False, max_len=500)))
    return dict(
        first_name=text(d.first_name, "first_name", "First name", max_len=100),
        last_name=text(d.last_name, "last_name", "Last name", max_len=100),
        date_of_birth=d.date_of_birth,
        sex=sex,
        phone=clean_phone(d.phone),
        email=clean_email(d.email),
        address_line=text(d.address_line, "address_line", "Address", required=False),
        city=text(d.city, "city", "City", required=False, max_len=100),
        state=text(d.state, "state", "State", required=False, max_len=50),
        postal_code=text(d.postal_code, "postal_code", "ZIP code", required=False, max_len=20),
        notes=text(d.notes, "notes", "Notes", required=False, max_len=4000),
        allergy_status=status,
        pregnant=bool(d.pregnant),
        breastfeeding=bool(d.breastfeeding),
        _allergies=allergies,
        _conditions=conditions,
    )


def _load_patient(s: Session, patient_id: uuid.UUID, *, lock: bool = False) -> Patient:
    q = (
        sa.select(Patient)
        .where(Patient.id == patient_id)
        .options(selectinload(Patient.allergies), selectinload(Patient.conditions))
    )
    if lock:
        q = q.with_for_update()
    p = s.scalar(q)
    if p is None:
        raise NotFound("That patient does not exist.")
    return p


@dataclasses.dataclass(frozen=True)
class DuplicateCandidate:
    """A registered patient who looks like the one being registered."""

    id: uuid.UUID
    full_name: str
    date_of_birth: dt.date
    phone: str | None
    allergies: int
    why: str  # "same name and date of birth", ...


def _name_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z]+", " ", text.lower()).split())


def _birth_days(day: dt.date) -> list[dt.date]:
    """The date of birth and the one with day and month swapped (03/04 typed
    as 04/03), when that is a date."""
    days = [day]
    if day.day <= 12 and day.day != day.month:
        with contextlib.suppress(ValueError):
            days.append(day.replace(month=day.day, day=day.month))
    return days


def possible_duplicates(s: Session, first: str, last: str, born: dt.date,
                        exclude: uuid.UUID | None = None) -> list[DuplicateCandidate]:
    """Registered patients with the same date of birth (or its day and month
    swapped) whose name is the same or nearly the same (a typo, first and last
    swapped). One indexed statement: patients born that day are few."""
    first_k, last_k = _name_key(first), _name_key(last)
    whole = f"{first_k} {last_k}"
    rows = s.execute(
        sa.select(Patient.id, Patient.first_name, Patient.last_name, Patient.date_of_birth,
                  Patient.phone,
                  sa.select(sa.func.count()).where(PatientAllergy.patient_id == Patient.id)
                  .correlate(Patient).scalar_subquery())
        .where(Patient.date_of_birth.in_(_birth_days(born)), Patient.active.is_(True))
        .order_by(Patient.last_name, Patient.first_name)).all()
    out = []
    for pid, f, la, dob, phone, allergies in rows:
        if pid == exclude:
            continue
        fk, lk = _name_key(f), _name_key(la)
        if (fk, lk) == (first_k, last_k):
            why = "same name"
        elif (fk, lk) == (last_k, first_k):
            why = "first and last name swapped"
        elif difflib.SequenceMatcher(None, f"{fk} {lk}", whole).ratio() >= 0.84 or (
                lk == last_k and fk[:1] == first_k[:1]):
            why = "nearly the same name"
        else:
            continue
        why += " and date of birth" if dob == born else ", day and month of birth swapped"
        out.append(DuplicateCandidate(pid, f"{f} {la}", dob, phone, int(allergies or 0), why))
    return out


def create_patient(
    sf: sessionmaker[Session],
    actor: Actor,
    draft: PatientDraft,
    *,
    patient_id: uuid.UUID | None = None,
    another_person: bool = False,
) -> PatientInfo:
    """Register a patient. A client-chosen ``patient_id`` makes a retry harmless.
    A patient who looks like one already registered (same or nearly the same
    name and date of birth) is refused with PossibleDuplicate, listing them,
    unless the user confirmed ``another_person``: a duplicate record splits a
    patient's allergies and history."""
    values = _clean_patient(draft)
    allergies, conditions = values.pop("_allergies"), values.pop("_conditions")

    def body(w: uow.Work) -> PatientInfo:
        s = w.session
        if patient_id is not None and s.get(Patient, patient_id) is not None:
            return _patient_info(_load_patient(s, patient_id))  # a retry: it exists
        if not another_person:
            found = possible_duplicates(s, values["first_name"], values["last_name"],
                                        values["date_of_birth"])
            if found:
                raise PossibleDuplicate(found)
        p = Patient(id=patient_id or uuid.uuid4(), **values, updated_by=w.actor.username)
        if p.allergy_status is not AllergyStatus.NOT_ASKED:
            p.allergy_status_by, p.allergy_status_at = w.actor.username, clock.now()
        p.allergies = [PatientAllergy(allergen=a.allergen, reaction=a.reaction,
                                      severity=a.severity, intolerance=a.intolerance)
                       for a in allergies]
        p.conditions = [PatientCondition(name=c.name, notes=c.notes) for c in conditions]
        s.add(p)
        s.flush()
        return _patient_info(p)

    return uow.write(sf, actor, Perm.WRITE_PATIENTS, body)


def update_patient(
    sf: sessionmaker[Session],
    actor: Actor,
    patient_id: uuid.UUID,
    draft: PatientDraft,
    *,
    expected_version: int,
    request_id: uuid.UUID | None = None,
) -> PatientInfo:
    values = _clean_patient(draft)
    allergies, conditions = values.pop("_allergies"), values.pop("_conditions")

    def body(w: uow.Work) -> PatientInfo:
        s = w.session
        p = _load_patient(s, patient_id, lock=True)
        w.expect_version(p, expected_version, "patient")
        if values["allergy_status"] is not p.allergy_status or (
                values["allergy_status"] is AllergyStatus.RECORDED
                and _allergies_changed(p, allergies)):
            p.allergy_status_by, p.allergy_status_at = w.actor.username, clock.now()
        for key, value in values.items():
            setattr(p, key, value)
        _sync_allergies(s, p, allergies)
        _sync_conditions(s, p, conditions)
        p.updated_by = w.actor.username
        # bump the version even when only allergies/conditions changed
        p.updated_at = clock.now()
        s.flush()
        return _patient_info(p)

    return uow.write(sf, actor, Perm.WRITE_PATIENTS, body, request_id=request_id,
                     operation="patients.update",
                     replay=lambda w, _id: _patient_info(_load_patient(w.session, patient_id)))


def _allergies_changed(p: Patient, wanted: list[AllergyDraft]) -> bool:
    def keyed(items: Sequence[Any]) -> set[tuple[str, str | None, str, bool]]:
        return {(a.allergen.lower(), a.reaction, Severity(a.severity).value, bool(a.intolerance))
                for a in items}
    return keyed(p.allergies) != keyed(wanted)


def _sync_allergies(s: Session, p: Patient, wanted: list[AllergyDraft]) -> None:
    current = {a.allergen.lower(): a for a in p.allergies}
    keep = {a.allergen.lower() for a in wanted}
    for key, row in current.items():
        if key not in keep:
            p.allergies.remove(row)
    s.flush()
    for a in wanted:
        known = current.get(a.allergen.lower())
        if known is None:
            p.allergies.append(PatientAllergy(allergen=a.allergen, reaction=a.reaction,
                                              severity=a.severity, intolerance=a.intolerance))
        else:
            known.allergen, known.reaction = a.allergen, a.reaction
            known.severity = Severity(a.severity)
            known.intolerance = a.intolerance


def _sync_conditions(s: Session, p: Patient, wanted: list[ConditionDraft]) -> None:
    current = {c.name.lower(): c for c in p.conditions}
    keep = {c.name.lower() for c in wanted}
    for key, row in current.items():
        if key not in keep:
            p.conditions.remove(row)
    s.flush()
    for c in wanted:
        had = current.get(c.name.lower())
        if had is None:
            p.conditions.append(PatientCondition(name=c.name, notes=c.notes))
        else:
            had.name, had.notes = c.name, c.notes


def get_patient(sf: sessionmaker[Session], actor: Actor, patient_id: uuid.UUID) -> PatientInfo:
    require(actor, Perm.READ_PATIENTS)
    with db.read_session(sf) as s:
        return _patient_info(_load_patient(s, patient_id))


# ------------------------------------------------------------------ prescribers


@dataclasses.dataclass(frozen=True)
class PrescriberDraft:
    first_name: str
    last_name: str
    credentials: str | None = None
    npi: str | None = None
    licence_number: str | None = None
    dea_number: str | None = None
    phone: str | None = None
    address: str | None = None


@dataclasses.dataclass(frozen=True)
class PrescriberInfo:
    id: uuid.UUID
    first_name: str
    last_name: str
    credentials: str | None
    npi: str | None
    licence_number: str | None
    dea_number: str | None
    phone: str | None
    address: str | None
    active: bool
    version: int

    @property
    def display_name(self) -> str:
        suffix = f", {self.credentials}" if self.credentials else ""
        return f"{self.first_name} {self.last_name}{suffix}"


def prescriber_info(x: Prescriber) -> PrescriberInfo:
    return PrescriberInfo(
        x.id, x.first_name, x.last_name, x.credentials, x.npi, x.licence_number, x.dea_number,
        x.phone, x.address, x.active, x.version,
    )


def _clean_prescriber(d: PrescriberDraft) -> dict[str, Any]:
    values = dict(
        first_name=text(d.first_name, "first_name", "First name", max_len=100),
        last_name=text(d.last_name, "last_name", "Last name", max_len=100),
        credentials=text(d.credentials, "credentials", "Credentials", required=False, max_len=20),
        npi=clean_npi(d.npi),
        licence_number=text(d.licence_number, "licence_number", "License number",
                            required=False, max_len=64),
        dea_number=clean_dea(d.dea_number),
        phone=clean_phone(d.phone),
        address=text(d.address, "address", "Address", required=False, max_len=300),
    )
    if not values["npi"] and not values["licence_number"]:
        raise ValidationError("Give the prescriber's NPI or license number.", field="npi")
    return values


def create_prescriber(
    sf: sessionmaker[Session],
    actor: Actor,
    draft: PrescriberDraft,
    *,
    prescriber_id: uuid.UUID | None = None,
) -> PrescriberInfo:
    """Add a prescriber. A client-chosen ``prescriber_id`` makes a retry harmless."""
    values = _clean_prescriber(draft)

    def body(w: uow.Work) -> PrescriberInfo:
        s = w.session
        if prescriber_id is not None and (x := s.get(Prescriber, prescriber_id)) is not None:
            return prescriber_info(x)
        x = Prescriber(id=prescriber_id or uuid.uuid4(), **values, updated_by=w.actor.username)
        s.add(x)
        s.flush()
        return prescriber_info(x)

    return uow.write(sf, actor, Perm.WRITE_PRESCRIBERS, body)


# --------------------------------------------------------------------- feedback


@dataclasses.dataclass(frozen=True)
class FeedbackInfo:
    id: uuid.UUID
    patient_id: uuid.UUID
    feedback: str
    received_at: dt.datetime
    reply: str | None
    replied_by: str | None
    replied_at: dt.datetime | None
    version: int


def _feedback_query() -> Query:
    replier = sa.orm.aliased(Staff)
    return sa.select(PatientFeedback, replier.full_name).outerjoin(
        replier, replier.id == PatientFeedback.replied_by
    )


def _feedback_info(f: PatientFeedback, replier: str | None) -> FeedbackInfo:
    return FeedbackInfo(f.id, f.patient_id, f.feedback, f.created_at, f.reply, replier,
                        f.replied_at, f.version)


def add_feedback(
    sf: sessionmaker[Session], actor: Actor, patient_id: uuid.UUID, feedback: str,
    *, feedback_id: uuid.UUID | None = None,
) -> FeedbackInfo:
    said = text(feedback, "feedback", "Feedback", max_len=4000)

    def body(w: uow.Work) -> FeedbackInfo:
        s = w.session
        if feedback_id is not None and (f := s.get(PatientFeedback, feedback_id)) is not None:
            return _feedback_info(f, None)
        if s.get(Patient, patient_id) is None:
            raise NotFound("That patient does not exist.")
        f = PatientFeedback(id=feedback_id or uuid.uuid4(), patient_id=patient_id,
                            feedback=said, received_by=w.staff_id, updated_by=w.actor.username)
        s.add(f)
        s.flush()
        return _feedback_info(f, None)

    return uow.write(sf, actor, Perm.FEEDBACK, body)


def reply_feedback(
    sf: sessionmaker[Session], actor: Actor, feedback_id: uuid.UUID, reply: str,
    *, expected_version: int,
) -> FeedbackInfo:
    said = text(reply, "reply", "Reply", max_len=4000)

    def body(w: uow.Work) -> FeedbackInfo:
        f = w.session.get(PatientFeedback, feedback_id, with_for_update=True)
        if f is None:
            raise NotFound("That feedback does not exist.")
        w.expect_version(f, expected_version, "feedback")
        f.reply, f.replied_by, f.replied_at = said, w.staff_id, clock.now()
        f.updated_by = w.actor.username
        w.session.flush()
        return _feedback_info(f, w.actor.full_name)

    return uow.write(sf, actor, Perm.REPLY_FEEDBACK, body)


def list_feedback(
    sf: sessionmaker[Session], actor: Actor, patient_id: uuid.UUID
) -> list[FeedbackInfo]:
    require(actor, Perm.READ_PATIENTS)
    with db.read_session(sf) as s:
        rows = s.execute(
            _feedback_query()
            .where(PatientFeedback.patient_id == patient_id)
            .order_by(PatientFeedback.created_at.desc())
        ).all()
        return [_feedback_info(f, name) for f, name in rows]


@dataclasses.dataclass(frozen=True)
class EarlierRecord:
    """A prescription or dispense brought over from the GetMeds web app."""

    id: uuid.UUID
    kind: str  # "Dispensed" or "Prescribed"
    date: dt.date | None
    what: str
    quantity: int | None
    notes: str | None


def earlier_records(sf: sessionmaker[Session], actor: Actor, patient_id: uuid.UUID
                    ) -> list[EarlierRecord]:
    """The patient's history from the previous system, newest first."""
    require(actor, Perm.READ_PATIENTS)
    with db.read_session(sf) as s:
        out = [EarlierRecord(i, "Dispensed", at.date() if at else None, drug, qty, notes)
               for i, at, drug, qty, notes in s.execute(
                   sa.select(LegacyDispense.id, LegacyDispense.dispensed_at,
                             LegacyDispense.drug_text, LegacyDispense.quantity,
                             LegacyDispense.instructions)
                   .where(LegacyDispense.patient_id == patient_id))]
        out += [EarlierRecord(i, "Prescribed", on, text, None, notes)
                for i, on, text, notes in s.execute(
                    sa.select(LegacyPrescription.id, LegacyPrescription.prescribed_on,
                              LegacyPrescription.text, LegacyPrescription.description)
                    .where(LegacyPrescription.patient_id == patient_id))]
    return sorted(out, key=lambda r: r.date or dt.date.min, reverse=True)
