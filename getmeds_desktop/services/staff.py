"""Staff accounts and embedded-mode sign-in (argon2 hashes, lockout).

In PostgreSQL mode each staff member is a database login role (see the security
issue); the password then lives only in the server, and ``staff_credentials``
stays empty.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
import weakref
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..errors import AccountLocked, AuthenticationFailed
from ..models import LoginThrottle, Prescriber, Role, Staff, StaffCredential
from . import clock, uow
from ._common import conflict_from, text
from .context import SYSTEM, Actor, Perm, require
from .errors import NotFound, PermissionDenied, ValidationError
from .identifiers import clean_dea

MAX_FAILED_ATTEMPTS = 5
LOCKOUT = dt.timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both paths cost the same.
# Made on first use: hashing at import time would slow every start-up.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash("not-a-real-password-0000")
    return _DUMMY_HASH


@dataclasses.dataclass(frozen=True)
class StaffInfo:
    id: uuid.UUID
    username: str
    full_name: str
    role: Role
    licence_number: str | None
    dea_number: str | None
    prescriber_id: uuid.UUID | None
    active: bool
    version: int
    has_password: bool
    must_change_password: bool
    practice_role: Role | None = None

    @property
    def role_label(self) -> str:
        if self.practice_role is not None:
            return f"{self.role.label} and {self.practice_role.label.lower()}"
        return self.role.label


# ------------------------------------------------------ PostgreSQL logins
# On PostgreSQL each staff member signs in as their own database role, a member
# of one of this pharmacy's group roles; the server checks the password and the
# GRANTs and row-level security decide what the role may do.


def server_logins(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def role_prefix(s: Session) -> str:
    from ..models import DbSecurity

    row = s.get(DbSecurity, 1)
    return row.role_prefix if row else "getmeds_"


def group_role(s: Session, role: Role) -> str:
    return f"{role_prefix(s)}{role.value}"


def _verifier(s: Session, login: str, password: str) -> str:
    """SCRAM verifier made here, so the password never travels to the server."""
    raw = s.connection().connection.driver_connection
    assert raw is not None
    verifier: bytes = raw.pgconn.encrypt_password(password.encode(), login.encode(),
                                                  b"scram-sha-256")
    return verifier.decode()


def _login_error(exc: sa.exc.DBAPIError, login: str) -> Exception | None:
    text_ = str(exc.orig)
    if "already exists" in text_:
        return ValidationError(
            f"The database server already has a login named {login} (logins are shared "
            "by every database on the server): choose another username.",
            field="username")
    if "only GetMeds administrators" in text_:
        return PermissionDenied("Only a GetMeds administrator can create staff logins.")
    return None


def create_login(s: Session, login: str, password: str, role: Role) -> None:
    """A login for a staff member who already has a staff row (of that role)."""
    try:
        with s.begin_nested():
            s.execute(sa.text("SELECT getmeds_create_login(:l, :v, :g)"),
                      {"l": login, "v": _verifier(s, login, password),
                       "g": group_role(s, role)})
    except sa.exc.DBAPIError as exc:
        raise (_login_error(exc, login) or exc) from None


def add_staff_with_login(s: Session, staff_id: uuid.UUID, login: str, password: str,
                         role: Role, full_name: str, licence_number: str | None,
                         dea_number: str | None, prescriber_id: uuid.UUID | None) -> None:
    """PostgreSQL: the staff row and its login, made together by the database
    (getmeds_add_staff), so that no login exists without its staff row."""
    try:
        with s.begin_nested():
            s.execute(sa.text("SELECT getmeds_add_staff(:i, :l, :v, :g, :n, :lic, :dea, :p)"),
                      {"i": staff_id, "l": login, "v": _verifier(s, login, password),
                       "g": group_role(s, role), "n": full_name, "lic": licence_number,
                       "dea": dea_number, "p": prescriber_id})
    except sa.exc.IntegrityError as exc:
        raise (conflict_from(exc) or exc) from None
    except sa.exc.DBAPIError as exc:
        raise (_login_error(exc, login) or exc) from None


def _alter_login(s: Session, login: str, *, password: str | None = None,
                 can_login: bool | None = None) -> None:
    verifier = _verifier(s, login, password) if password is not None else None
    try:
        with s.begin_nested():
            s.execute(sa.text("SELECT getmeds_alter_login(:l, :v, :c)"),
                      {"l": login, "v": verifier, "c": can_login})
    except sa.exc.DBAPIError as exc:
        if "not a GetMeds staff login" in str(exc.orig):
            raise NotFound(f"{login} has no database login yet.") from None
        raise


# One statement, so one round trip: the schema revision, the login, this
# pharmacy's role prefix, the login's group roles, its staff row, the number
# of staff and the pharmacy's time zone (the database's, in which its rules
# judge dates: migration 0016).
_SIGN_IN = sa.text("""
SELECT ARRAY(SELECT v.version_num FROM alembic_version AS v) AS revisions,
       session_user AS login,
       (SELECT count(*) FROM staff) AS staff_count,
       ARRAY(SELECT r.rolname::text FROM pg_catalog.pg_auth_members AS m
             JOIN pg_catalog.pg_roles AS r ON r.oid = m.roleid
             JOIN pg_catalog.pg_roles AS u ON u.oid = m.member
             WHERE u.rolname = session_user
               AND left(r.rolname, length(p.prefix)) = p.prefix) AS groups,
       p.prefix, s.id, s.username, s.full_name, s.role, s.prescriber_id, s.active,
       s.practice_role, getmeds_pharmacy_time_zone() AS zone
FROM (SELECT coalesce((SELECT role_prefix FROM db_security WHERE id = 1), 'getmeds_')
             AS prefix) AS p
LEFT JOIN staff AS s ON s.username = session_user
""")

NOT_STAFF = ("This database login is not an active GetMeds staff account; ask your "
             "administrator.")


@dataclasses.dataclass(frozen=True)
class SignedIn:
    actor: Actor
    staff_count: int
    zone: str | None = None  # the pharmacy's time zone (an IANA name)


def _checked(sf: sessionmaker[Session], stmt: sa.TextClause,
             refused: Exception | None) -> sa.Row[Any]:
    """Run one statement that reads ``revisions`` from alembic_version, and
    check the schema it names: SchemaMismatch as ``db.check_schema`` says it.
    A table this version reads that is missing or not readable raises
    ``refused`` (or the error itself) once the schema is known to be right."""
    from ..errors import SchemaMismatch

    engine = sf.kw["bind"]
    try:
        with db.quick_read(sf) as s:
            row = s.execute(stmt).one()
    except sa.exc.ProgrammingError:
        db.check_schema(engine)  # a schema this version does not know says so
        if refused is None:
            raise
        raise refused from None
    except sa.exc.DBAPIError as exc:
        raise db.describe_operational_error(exc, engine.url) from None
    head = db.head_revision()
    if list(row.revisions) != [head]:
        db.check_schema(engine)  # the message for an older, newer or foreign schema
        raise SchemaMismatch("The database schema changed while it was opened: try again.",
                             current=None, head=head)
    return row


def sign_in_check(sf: sessionmaker[Session]) -> SignedIn:
    """PostgreSQL, on a connection made as the staff member's own login: the
    database's schema is the one this version knows (else SchemaMismatch, as
    ``db.check_schema`` says it), and the login is an active staff member of
    this pharmacy in exactly one of its group roles (else AuthenticationFailed).
    The group role, not the staff row, decides the role in the app. One round
    trip (a statement outside a transaction)."""
    row = _checked(sf, _SIGN_IN, AuthenticationFailed(NOT_STAFF))
    prefix: str = row.prefix
    values = {r.value for r in Role}
    roles = [Role(g[len(prefix):]) for g in row.groups if g[len(prefix):] in values]
    if row.id is None or not row.active or len(roles) != 1:
        raise AuthenticationFailed(NOT_STAFF)
    actor = Actor(staff_id=row.id, username=row.username, full_name=row.full_name,
                  role=roles[0], prescriber_id=row.prescriber_id,
                  practice_role=(Role(row.practice_role) if row.practice_role
                                 and roles[0] is Role.ADMIN else None))
    return SignedIn(actor, int(row.staff_count), row.zone)


_OPEN = sa.text("SELECT ARRAY(SELECT v.version_num FROM alembic_version AS v) AS revisions, "
                "(SELECT count(*) FROM staff) AS staff_count, "
                "getmeds_pharmacy_time_zone() AS zone")


def open_check(sf: sessionmaker[Session]) -> tuple[int, str | None]:
    """PostgreSQL, a login that carries its own rights (IT's tools): the schema
    is the one this version knows, how many staff there are, and the
    pharmacy's time zone. One round trip."""
    row = _checked(sf, _OPEN, None)
    return int(row.staff_count), row.zone


def actor_from_session(sf: sessionmaker[Session]) -> Actor:
    """PostgreSQL: the staff member behind this connection's login role (see
    :func:`sign_in_check`)."""
    return sign_in_check(sf).actor


def _info(st: Staff, cred: StaffCredential | None, *, login: bool = False) -> StaffInfo:
    return StaffInfo(
        id=st.id,
        username=st.username,
        full_name=st.full_name,
        role=st.role,
        licence_number=st.licence_number,
        dea_number=st.dea_number,
        prescriber_id=st.prescriber_id,
        active=st.active,
        version=st.version,
        has_password=cred is not None or login,
        must_change_password=bool(cred and cred.must_change),
        practice_role=Role(st.practice_role) if st.practice_role else None,
    )


def actor_of(st: Staff) -> Actor:
    return Actor(
        staff_id=st.id,
        username=st.username,
        full_name=st.full_name,
        role=st.role,
        prescriber_id=st.prescriber_id,
        practice_role=Role(st.practice_role) if st.practice_role else None,
    )


PRACTICE_ROLES = (Role.PHARMACIST, Role.TECHNICIAN, Role.CLERK)


def clean_practice_role(role: Role, practice: Role | str | None) -> Role | None:
    """An administrator may also work as a pharmacist, a technician or a clerk
    (one of them); other staff have their role only."""
    if practice is None or (isinstance(practice, str) and not practice.strip()):
        return None
    try:
        value = Role(practice)
    except ValueError:
        value = None
    if value not in PRACTICE_ROLES:
        raise ValidationError("An administrator may also work as a pharmacist, a technician "
                              "or a clerk.", field="practice_role")
    if role is not Role.ADMIN:
        raise ValidationError(f"A {role.label.lower()} has that role only; a practice role is "
                              "for administrators.", field="practice_role")
    return value


def set_practice_role(sf: sessionmaker[Session], actor: Actor, staff_id: uuid.UUID,
                      practice_role: Role | str | None, *,
                      expected_version: int | None = None) -> StaffInfo:
    """Give an administrator a practice role (or take it away)."""
    def body(w: uow.Work) -> StaffInfo:
        st = w.session.get(Staff, staff_id)
        if st is None:
            raise NotFound("That staff member does not exist.")
        w.expect_version(st, expected_version, "staff member")
        practice = clean_practice_role(Role(st.role), practice_role)
        st.practice_role = practice.value if practice is not None else None
        st.updated_by = w.actor.username
        w.session.flush()
        return _info(st, _cred(w.session, st.id), login=st.username in _logins(w.session))

    return uow.write(sf, actor, Perm.MANAGE_STAFF, body)


def clean_username(value: str | None) -> str:
    name = (value or "").strip().lower()
    if not name:
        raise ValidationError("Username is required.", field="username")
    if not (2 <= len(name) <= 63) or not all(c.isalnum() or c in "._-" for c in name):
        raise ValidationError(
            "Username must be 2 to 63 letters, digits, dots, dashes or underscores.",
            field="username",
        )
    if not name[0].isalpha():
        raise ValidationError("Username must start with a letter.", field="username")
    return name


def check_password_policy(username: str, password: str) -> None:
    """At least 12 characters and not containing the username."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            field="password",
        )
    if username and username.lower() in password.lower():
        raise ValidationError("The password must not contain the username.", field="password")


def count_staff(sf: sessionmaker[Session]) -> int:
    with db.quick_read(sf) as s:  # one statement: one round trip on a server
        return s.scalar(sa.select(sa.func.count()).select_from(Staff)) or 0


def create_staff(
    sf: sessionmaker[Session],
    actor: Actor,
    *,
    username: str,
    full_name: str,
    role: Role | str,
    password: str | None = None,
    licence_number: str | None = None,
    dea_number: str | None = None,
    prescriber_id: uuid.UUID | None = None,
    must_change_password: bool = False,
    request_id: uuid.UUID | None = None,
    first: bool = False,
    practice_role: Role | str | None = None,
) -> StaffInfo:
    """Add a staff member. ``first``: the first administrator of a new pharmacy
    (refused once anyone is on the staff; nobody is signed in to do it)."""
    name = clean_username(username)
    full = text(full_name, "full_name", "Full name", max_len=200)
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(
            f"Role must be one of {', '.join(r.value for r in Role)}.", field="role"
        ) from None
    practice = clean_practice_role(role, practice_role)
    if password is not None:
        check_password_policy(name, password)
    dea = clean_dea(dea_number)
    licence = text(licence_number, "licence_number", "License number", required=False, max_len=64)

    def body(w: uow.Work) -> StaffInfo:
        s = w.session
        if first and s.scalar(sa.select(sa.func.count()).select_from(Staff)):
            raise PermissionDenied("This pharmacy has staff already: an administrator adds "
                                   "new staff members from the Administration screen.")
        if s.scalar(sa.select(Staff.id).where(Staff.username == name)) is not None:
            raise ValidationError("That username is taken.", field="username")
        if prescriber_id is not None and s.get(Prescriber, prescriber_id) is None:
            raise NotFound("The linked prescriber does not exist.", field="prescriber_id")
        if password is not None and server_logins(s):
            # one database call makes the staff row and its login
            sid = uuid.uuid4()
            add_staff_with_login(s, sid, name, password, role, full, licence, dea,
                                 prescriber_id)
            st = s.get(Staff, sid)
            assert st is not None
            if practice is not None:
                st.practice_role = practice.value
                s.flush()
            w.touched("staff", sid)
            return _info(st, None, login=True)
        st = Staff(id=uuid.uuid4(), username=name, full_name=full, role=role,
                   licence_number=licence, dea_number=dea, prescriber_id=prescriber_id,
                   updated_by=w.actor.username,
                   practice_role=practice.value if practice is not None else None)
        s.add(st)
        s.flush()
        if not server_logins(s):
            # failures typed for this name before it was anyone's do not count
            s.execute(sa.delete(LoginThrottle).where(LoginThrottle.username == name))
        cred = None
        if password is not None:
            cred = StaffCredential(staff_id=st.id, password_hash=_hasher.hash(password),
                                   must_change=must_change_password)
            s.add(cred)
        s.flush()
        return _info(st, cred, login=password is not None)

    def replay(w: uow.Work, staff_id: str) -> StaffInfo:
        st = w.session.get(Staff, uuid.UUID(staff_id))
        assert st is not None
        return _info(st, _cred(w.session, st.id))

    return uow.write(sf, SYSTEM if first else actor, Perm.MANAGE_STAFF, body,
                     request_id=request_id, operation="staff.create", replay=replay)


def _cred(s: Session, staff_id: uuid.UUID) -> StaffCredential | None:
    """Embedded mode only (on PostgreSQL nobody may read that table)."""
    return None if server_logins(s) else s.get(StaffCredential, staff_id)


def _logins(s: Session) -> set[str]:
    if not server_logins(s):
        return set()
    return set(s.scalars(sa.text("SELECT rolname FROM pg_catalog.pg_roles WHERE rolcanlogin")))


def list_staff(sf: sessionmaker[Session], actor: Actor) -> list[StaffInfo]:
    require(actor, Perm.MANAGE_STAFF)
    with db.read_session(sf) as s:
        people = s.scalars(sa.select(Staff).order_by(Staff.role, Staff.username)).all()
        logins = _logins(s)
        return [_info(st, _cred(s, st.id), login=st.username in logins) for st in people]


def get_staff(sf: sessionmaker[Session], staff_id: uuid.UUID) -> StaffInfo:
    with db.read_session(sf) as s:
        st = s.get(Staff, staff_id)
        if st is None:
            raise NotFound("That staff member does not exist.")
        return _info(st, _cred(s, staff_id), login=st.username in _logins(s))


def actor_for_username(sf: sessionmaker[Session], username: str) -> Actor:
    """The Actor of an active staff member (used after a database-role sign-in)."""
    with db.read_session(sf) as s:
        st = s.scalar(sa.select(Staff).where(Staff.username == username.lower()))
        if st is None or not st.active:
            raise AuthenticationFailed("Wrong username or password.")
        return actor_of(st)


class _UnknownNames:
    """Failed sign-ins of usernames that are not staff, counted in memory.

    They lock like a real account (so the answer never tells whether a
    username exists) but leave no row: nobody can lock out a username before
    it is created, or fill the database with names. At most ``LIMIT`` names per
    database are remembered (the oldest are forgotten first)."""

    LIMIT = 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_db: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, dt.datetime | None]]] \
            = weakref.WeakKeyDictionary()

    def _table(self, sf: sessionmaker[Session]) -> dict[str, tuple[int, dt.datetime | None]]:
        return self._by_db.setdefault(sf.kw.get("bind") or sf, {})

    def locked_until(self, sf: sessionmaker[Session], name: str, now: dt.datetime
                     ) -> dt.datetime | None:
        with self._lock:
            _count, until = self._table(sf).get(name, (0, None))
            return until if until is not None and until > now else None

    def failed(self, sf: sessionmaker[Session], name: str, now: dt.datetime) -> bool:
        """Count a failure; True when the name is now locked."""
        with self._lock:
            table = self._table(sf)
            count, until = table.pop(name, (0, None))
            if until is not None and until <= now:
                count = 0
            count += 1
            locked = count >= MAX_FAILED_ATTEMPTS
            table[name] = (0, now + LOCKOUT) if locked else (count, None)
            while len(table) > self.LIMIT:
                del table[next(iter(table))]
            return locked

    def forget(self, sf: sessionmaker[Session], name: str) -> None:
        with self._lock:
            self._table(sf).pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._by_db.clear()


unknown_names = _UnknownNames()


def authenticate(sf: sessionmaker[Session], username: str, password: str) -> Actor:
    """Embedded-mode sign-in. The answer never reveals whether the username
    exists: the same message, one argon2 verification either way (against a
    dummy hash made with the same parameters for an unknown name), and the
    same lockout after repeated failures. Only real staff get a
    ``login_throttle`` row."""
    typed = (username or "").strip().lower()[:200]
    now = clock.now()
    dummy = _dummy_hash()  # made before timing starts to differ: the first call pays for it

    def body(w: uow.Work) -> Actor | dt.datetime | None:
        """The actor signed in, the end of a lockout, or None (a failure that is
        counted: the unit of work commits it, and the caller refuses after)."""
        s = w.session
        st = s.scalar(sa.select(Staff).where(Staff.username == typed)) if typed else None
        throttle = s.get(LoginThrottle, typed)
        if st is None:
            if throttle is not None:
                s.delete(throttle)  # left by an older version for a name that is no one
                throttle = None
            until = unknown_names.locked_until(sf, typed, now)
        else:
            until = throttle.locked_until if throttle is not None else None
        if until is not None and until > now:
            return until
        cred = s.get(StaffCredential, st.id) if st is not None else None
        ok = False
        try:
            _hasher.verify(cred.password_hash if cred else dummy, password or "")
            ok = cred is not None and st is not None and st.active
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if ok and st is not None and cred is not None:
            if throttle is not None:
                s.delete(throttle)
            if _hasher.check_needs_rehash(cred.password_hash):
                cred.password_hash = _hasher.hash(password)
            return actor_of(st)
        if st is None:
            locked = bool(typed) and unknown_names.failed(sf, typed, now)
        else:
            if throttle is None:
                throttle = LoginThrottle(username=typed, failed_attempts=0)
                s.add(throttle)
            throttle.failed_attempts += 1
            throttle.last_failure_at = now
            locked = throttle.failed_attempts >= MAX_FAILED_ATTEMPTS
            if locked:
                throttle.locked_until = now + LOCKOUT
                throttle.failed_attempts = 0
        return now + LOCKOUT if locked else None

    outcome = uow.write(sf, SYSTEM, None, body)
    if isinstance(outcome, Actor):
        return outcome
    if outcome is not None:
        raise AccountLocked(_locked_message(outcome))
    raise AuthenticationFailed("Wrong username or password.")


def _locked_message(until: dt.datetime) -> str:
    local = clock.local(until).strftime("%H:%M")
    return (
        "Too many failed sign-in attempts: sign-in for this username is locked until "
        f"{local}. An administrator can unlock it sooner."
    )


def unlock(sf: sessionmaker[Session], actor: Actor, username: str) -> None:
    name = username.strip().lower()

    def body(w: uow.Work) -> None:
        unknown_names.forget(sf, name)
        w.session.execute(sa.delete(LoginThrottle).where(LoginThrottle.username == name))

    uow.write(sf, actor, Perm.MANAGE_STAFF, body)


def password_must_change(sf: sessionmaker[Session], staff_id: uuid.UUID) -> bool:
    with db.read_session(sf) as s:
        cred = _cred(s, staff_id)
        return bool(cred and cred.must_change)


def change_own_password(
    sf: sessionmaker[Session], actor: Actor, old_password: str, new_password: str
) -> None:
    def body(w: uow.Work) -> None:
        s = w.session
        if server_logins(s):
            # the connection itself proved the current password at sign-in
            check_password_policy(actor.username, new_password)
            if old_password == new_password:
                raise ValidationError(
                    "The new password must differ from the current one.", field="password")
            verifier = _verifier(s, actor.username, new_password)
            s.execute(sa.text(f"ALTER ROLE CURRENT_USER PASSWORD '{verifier}'"))
            return
        cred = s.get(StaffCredential, w.staff_id)
        try:
            _hasher.verify(cred.password_hash if cred else _dummy_hash(), old_password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise ValidationError("The current password is wrong.", field="old_password") from None
        if old_password == new_password:
            raise ValidationError(
                "The new password must differ from the current one.", field="password"
            )
        check_password_policy(actor.username, new_password)
        assert cred is not None
        cred.password_hash = _hasher.hash(new_password)
        cred.must_change = False
        cred.changed_at = clock.now()

    uow.write(sf, actor, None, body)


def reset_password(
    sf: sessionmaker[Session],
    actor: Actor,
    staff_id: uuid.UUID,
    new_password: str,
    *,
    must_change: bool = True,
) -> None:
    """Set a staff member's password (an admin's reset; they change it at sign-in)."""
    def body(w: uow.Work) -> None:
        s = w.session
        st = s.get(Staff, staff_id)
        if st is None:
            raise NotFound("That staff member does not exist.")
        check_password_policy(st.username, new_password)
        if server_logins(s):
            _alter_login(s, st.username, password=new_password)
            return
        cred = s.get(StaffCredential, staff_id)
        if cred is None:
            cred = StaffCredential(staff_id=staff_id, password_hash="")
            s.add(cred)
        cred.password_hash = _hasher.hash(new_password)
        cred.must_change = must_change
        cred.changed_at = clock.now()
        s.execute(sa.delete(LoginThrottle).where(LoginThrottle.username == st.username))

    uow.write(sf, actor, Perm.MANAGE_STAFF, body)


def set_active(
    sf: sessionmaker[Session],
    actor: Actor,
    staff_id: uuid.UUID,
    active: bool,
    *,
    expected_version: int | None = None,
) -> StaffInfo:
    if actor.staff_id == staff_id and not active:
        raise ValidationError("You cannot deactivate your own account.")

    def body(w: uow.Work) -> StaffInfo:
        s = w.session
        st = s.get(Staff, staff_id)
        if st is None:
            raise NotFound("That staff member does not exist.")
        w.expect_version(st, expected_version, "staff member")
        if not active and st.role is Role.ADMIN and st.active:
            admins = s.scalar(
                sa.select(sa.func.count()).select_from(Staff).where(
                    Staff.role == Role.ADMIN, Staff.active.is_(True)
                )
            )
            if (admins or 0) <= 1:
                raise ValidationError("The last active administrator cannot be deactivated.")
        st.active = active
        st.updated_by = w.actor.username
        s.flush()
        if server_logins(s) and _has_login(s, st.username):
            _alter_login(s, st.username, can_login=active)
        return _info(st, _cred(s, staff_id))

    return uow.write(sf, actor, Perm.MANAGE_STAFF, body)


def _has_login(s: Session, login: str) -> bool:
    return bool(s.scalar(sa.text("SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = :l"),
                         {"l": login}))


def find_by_username(sf: sessionmaker[Session], username: str) -> StaffInfo:
    with db.read_session(sf) as s:
        st = s.scalar(sa.select(Staff).where(Staff.username == username.strip().lower()))
        if st is None:
            raise NotFound(f"There is no staff member '{username}'.")
        return _info(st, _cred(s, st.id), login=st.username in _logins(s))
