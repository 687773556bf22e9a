"""A stand-in for the workstation's replica in the outbox tests: a SQLite
database made by the normal migrations and filled with a copy of the server's
rows. (To be swapped for sync/replica.py once it exists.)

Rows the database maintains itself are not copied: the lot and product
balances come from the movements (lots are copied empty and the movements'
trigger fills them), the controlled register likewise, product_stock rows
come with their products, and the audit log is the replica's own.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from getmeds_desktop import db
from getmeds_desktop.models import Base

_NOT_COPIED = {"audit_log", "product_stock", "controlled_register", "staff_credentials",
               "login_throttle", "db_security"}


def copy_to_replica(server: Engine, replica_url: str) -> Engine:
    """A replica engine (a migrated, empty SQLite database at ``replica_url``)
    holding what the server holds now."""
    replica = db.make_engine(replica_url)
    with server.connect() as src, replica.begin() as dst:
        for table in Base.metadata.sorted_tables:
            if table.name in _NOT_COPIED:
                continue
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            if not rows:
                continue
            if table.name == "app_settings":  # the migration made the row
                for row in rows:
                    dst.execute(sa.update(table).where(table.c.id == row["id"]).values(row))
                continue
            if table.name == "stock_lots":
                rows = [{**r, "on_hand": 0} for r in rows]
            dst.execute(sa.insert(table), rows)
    return replica
