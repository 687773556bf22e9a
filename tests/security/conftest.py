"""Security tests: a hostile staff member with their own login and ``psql``.

Every attack runs over a direct psycopg connection as the staff member's own
database login, which signs in with its SCRAM password (the test server checks
the passwords of our test logins: see .ci/run). The database is the boundary:
nothing here goes through the application's own checks unless a test says so.

``pharmacy`` is one migrated PostgreSQL database per test module, with staff of
every role (a second doctor too), stock and patients; tests add their own rows,
and commit them, as the staff members would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import errors
from sqlalchemy.orm import Session, sessionmaker

from getmeds_desktop import db
from getmeds_desktop.models import Role, Schedule
from getmeds_desktop.services import catalog, patients, staff
from getmeds_desktop.services.context import SYSTEM, Actor
from getmeds_desktop.services.patients import PrescriberDraft
from tests.fixtures.data import PASSWORD, World, build_world, valid_dea, valid_npi

# What the server answers a refusal with: privileges, row-level security,
# our triggers and constraints.
REFUSED = (errors.InsufficientPrivilege, errors.RaiseException, errors.CheckViolation,
           errors.IntegrityConstraintViolation, errors.InvalidParameterValue,
           errors.SerializationFailure)  # 0025: what a fill was decided from changed


@dataclasses.dataclass
class Pharmacy:
    url: sa.URL
    engine: sa.Engine
    sf: sessionmaker[Session]
    world: World
    prefix: str
    database: str
    doctor2: Actor

    # ------------------------------------------------------------ sessions

    def login(self, who: Actor | str, password: str = PASSWORD, *,
              autocommit: bool = False) -> psycopg.Connection:
        """A direct connection as a staff member's own login (SCRAM password)."""
        name = who if isinstance(who, str) else who.username
        return psycopg.connect(host=self.url.host, port=self.url.port or 5432,
                               dbname=self.database, user=name, password=password,
                               autocommit=autocommit, application_name="getmeds-security-test")

    def owner(self) -> psycopg.Connection:
        """The database owner (maintenance, imports, getmeds-admin)."""
        u = self.url
        return psycopg.connect(host=u.host, port=u.port or 5432, dbname=self.database,
                               user=u.username, password=u.password, autocommit=True,
                               application_name="getmeds-security-test")

    def q(self, sql: str, params: dict | tuple | None = None) -> list[tuple]:
        with self.owner() as c:
            cur = c.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def one(self, sql: str, params: dict | tuple | None = None) -> object:
        rows = self.q(sql, params)
        return rows[0][0] if rows else None

    @contextlib.contextmanager
    def temporary(self, *who: Actor | str) -> Iterator[None]:
        """TEMPORARY given on purpose, to show that a temporary table changes
        nothing even for a role that may create one (defence in depth)."""
        names = [w if isinstance(w, str) else w.username for w in who]
        roles = ", ".join(f'"{n}"' for n in names)
        self.q(f'GRANT TEMPORARY ON DATABASE "{self.database}" TO {roles}')
        try:
            yield
        finally:
            self.q(f'REVOKE TEMPORARY ON DATABASE "{self.database}" FROM {roles}')

    def group(self, role: str) -> str:
        return f"{self.prefix}{role}"

    # ---------------------------------------------------------------- data

    def stocked(self, name: str, qty: int = 50, schedule: Schedule = Schedule.NONE
                ) -> tuple[catalog.ProductInfo, uuid.UUID]:
        """A product (through the services, as the owner) and one lot of it."""
        product = self.world.product(name, schedule=schedule)
        lot = self.world.receive(product.id, qty, lot=f"{name[:6].upper()}-1").lot_id
        return product, lot

    def rx(self, product_id: uuid.UUID, *, quantity: int = 10, refills: int = 0,
           prescriber_id: uuid.UUID | None = None, patient_id: uuid.UUID | None = None,
           actor: Actor | None = None):
        if patient_id is None:
            patient_id = self.world.patient("Sec", f"Patient{uuid.uuid4().hex[:6]}").id
        return self.world.rx(patient_id, product_id, quantity=quantity, refills=refills,
                             prescriber_id=prescriber_id, actor=actor)


def verifier(conn: psycopg.Connection, login: str, password: str) -> str:
    """A SCRAM verifier computed by the client, as the app makes them."""
    return conn.pgconn.encrypt_password(password.encode(), login.encode(),
                                        b"scram-sha-256").decode()


def refused(conn: psycopg.Connection, sql: str, params: dict | tuple | None = None, *,
            match: str | None = None) -> str:
    """The statement is refused by the server. Only the statement is undone (a
    savepoint) when a transaction was open, the whole transaction otherwise."""
    with pytest.raises(REFUSED) as exc, conn.transaction():
        conn.execute(sql, params)
    message = str(exc.value)
    if match is not None:
        assert match in message, message
    return message


def refused_at_commit(conn: psycopg.Connection, statements: list[tuple[str, dict]], *,
                      match: str | None = None) -> str:
    """Every statement is accepted, and the COMMIT is refused."""
    for sql, params in statements:
        conn.execute(sql, params)
    with pytest.raises(REFUSED) as exc:
        conn.commit()
    conn.rollback()
    message = str(exc.value)
    if match is not None:
        assert match in message, message
    return message


# Staff other than administrators may not read the audit log: an attacker
# writes its shape out by hand.
_AUDIT_LOG = ("CREATE TEMP TABLE audit_log (id bigserial, occurred_at timestamptz, actor text, "
              "db_user text, action text, table_name text, row_id text, before jsonb, "
              "after jsonb)")


def shadow(conn: psycopg.Connection, *tables: str) -> None:
    """Temporary tables named like ours or like catalogs (catalogs with their
    rows, ours empty and without constraints), for an attacker to fill with
    what they would like the functions to read."""
    for table in tables:
        if table.startswith("pg_"):
            conn.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM pg_catalog.{table}")
        elif table == "audit_log":
            conn.execute(_AUDIT_LOG)
        else:
            conn.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM public.{table} "
                         "WITH NO DATA")


@pytest.fixture(scope="module")
def pharmacy(_backends, pg_passwords_enforced) -> Iterator[Pharmacy]:
    if not pg_passwords_enforced:
        pytest.fail("this PostgreSQL server trusts local logins without a password, so the "
                    "security tests would prove nothing; run .ci/run once (it makes the "
                    "server check the passwords of the test logins)")
    url = sa.engine.make_url(_backends["postgresql"].new_database())
    engine = db.make_engine(url)
    sf = db.session_factory(engine)
    world = build_world(sf)
    with engine.connect() as c:
        prefix = c.scalar(sa.text("SELECT role_prefix FROM db_security"))
    tag = uuid.uuid4().hex[:6]
    prescriber = patients.create_prescriber(sf, SYSTEM, PrescriberDraft(
        first_name="Theo", last_name="Seconddoc", credentials="MD",
        npi=valid_npi((int(tag, 16) + 3) % 10**8), dea_number=valid_dea("S", int(tag, 16) + 11)))
    info = staff.create_staff(sf, SYSTEM, username=f"doctwo{tag}", full_name="Second Doctor",
                              role=Role.DOCTOR, password=PASSWORD, prescriber_id=prescriber.id)
    doctor2 = staff.actor_for_username(sf, info.username)
    yield Pharmacy(url=url, engine=engine, sf=sf, world=world, prefix=prefix,
                   database=url.database or "", doctor2=doctor2)
    engine.dispose()

