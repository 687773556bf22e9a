"""The table models of the main lists: products, patients, prescriptions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtGui import QColor

from ...enums import RxStatus, Schedule, StorageCondition
from ...services import clock, listing
from ...services.identifiers import format_ndc
from ..style import CONTROLLED_FG, EXPIRED_BG, EXPIRED_FG, LOW_FG, MUTED_FG, SOON_BG
from ..workspace import Workspace
from .paged import ALIGN_CENTER, ALIGN_RIGHT, Column, PagedTableModel

STORAGE_LABELS = {StorageCondition.ROOM: "Room", StorageCondition.REFRIGERATED: "Fridge",
                  StorageCondition.FROZEN: "Freezer"}


def schedule_label(s: Schedule) -> str:
    return "" if s is Schedule.NONE else f"C-{s.value}"


def day(d: dt.date | None) -> str:
    return "" if d is None else d.strftime("%Y-%m-%d")


def local_time(t: dt.datetime | None) -> str:
    return "" if t is None else clock.local(t).strftime("%Y-%m-%d %H:%M")


# ------------------------------------------------------------------ products


def _expiry_text(r: listing.ProductRow) -> str:
    if r.nearest_expiry is None:
        return ""
    if r.expired_on(clock.today()):
        return f"{day(r.nearest_expiry)}  expired"
    return day(r.nearest_expiry)


def _expiry_bg(r: listing.ProductRow) -> QColor | None:
    today = clock.today()
    if r.expired_on(today):
        return EXPIRED_BG
    if r.expiring_on(today, 30):
        return SOON_BG
    return None


def _expiry_tip(r: listing.ProductRow) -> str | None:
    today = clock.today()
    if r.expired_on(today):
        return "A lot of this product has expired and is still on hand: write it off."
    if r.expiring_on(today, 30):
        return "A lot expires within 30 days."
    return None


PRODUCT_COLUMNS: list[Column[listing.ProductRow]] = [
    Column("name", "Name", lambda r: r.name, "name", width=240,
           bold=lambda r: r.schedule is not Schedule.NONE,
           tooltip=lambda r: " ".join(x for x in (r.name, r.strength, r.dosage_form) if x)),
    Column("strength", "Strength", lambda r: r.strength, "strength", width=110),
    Column("form", "Form", lambda r: r.dosage_form, "dosage_form", width=130),
    Column("ndc", "NDC", lambda r: format_ndc(r.ndc), "ndc", width=110),
    Column("category", "Category", lambda r: r.category, "category", width=140),
    Column("schedule", "Schedule", lambda r: schedule_label(r.schedule), "schedule",
           align=ALIGN_CENTER, width=80,
           foreground=lambda r: CONTROLLED_FG if r.schedule is not Schedule.NONE else None,
           bold=lambda r: r.schedule is not Schedule.NONE,
           tooltip=lambda r: ("Controlled substance: every movement goes to the register."
                              if r.schedule is not Schedule.NONE else None)),
    Column("on_hand", "On hand", lambda r: f"{r.on_hand:,}", "on_hand", align=ALIGN_RIGHT,
           width=80, foreground=lambda r: LOW_FG if r.low else None, bold=lambda r: r.low,
           tooltip=lambda r: (f"At or below the reorder level ({r.reorder_level})."
                              if r.low else None)),
    Column("reorder_level", "Reorder at", lambda r: f"{r.reorder_level:,}", "reorder_level",
           align=ALIGN_RIGHT, width=95),
    Column("nearest_expiry", "Nearest expiry", _expiry_text, "nearest_expiry", width=150,
           background=_expiry_bg, tooltip=_expiry_tip,
           foreground=lambda r: EXPIRED_FG if r.expired_on(clock.today()) else None),
    Column("storage", "Storage", lambda r: STORAGE_LABELS.get(r.storage, r.storage.value),
           "storage", width=80),
]


def _marking(ws: Workspace, table: str, model: PagedTableModel) -> PagedTableModel:
    """The model marks its rows changed offline and not yet on the server."""
    model.pending_source = lambda: ws.offline_pending.get(table, frozenset())
    ws.offline_changed.connect(model.refresh_pending)
    model.refresh_pending()
    return model


def product_model(ws: Workspace) -> PagedTableModel:
    actor = ws.actor

    def fetch(f: Any, sort: str, desc: bool, after: Any, n: int) -> Any:
        return listing.list_products(ws.sf, actor, f or listing.ProductFilter(), sort=sort,
                                     descending=desc, after=after, limit=n)

    return _marking(ws, "products", PagedTableModel(
        ws.tasks, PRODUCT_COLUMNS, fetch,
        lambda f, sort, _desc, ids: listing.product_rows(
            ws.sf, actor, ids, f or listing.ProductFilter(), sort=sort),
        default_sort="name"))


# ------------------------------------------------------------------ patients

PATIENT_COLUMNS: list[Column[listing.PatientRow]] = [
    Column("name", "Name", lambda r: r.name, "name", width=240),
    Column("dob", "Date of birth", lambda r: day(r.date_of_birth), "date_of_birth", width=110),
    Column("sex", "Sex", lambda r: r.sex.value.capitalize() if hasattr(r.sex, "value")
           else str(r.sex).capitalize(), None, width=70),
    Column("phone", "Phone", lambda r: r.phone, "phone", width=140),
    Column("city", "City", lambda r: r.city, "city", width=130),
    Column("allergies", "Allergies", lambda r: f"{r.allergy_count} recorded"
           if r.allergy_count else "none recorded", None, width=120,
           foreground=lambda r: EXPIRED_FG if r.allergy_count else MUTED_FG,
           bold=lambda r: bool(r.allergy_count)),
]


def patient_model(ws: Workspace) -> PagedTableModel:
    actor = ws.actor

    def fetch(search: Any, sort: str, desc: bool, after: Any, n: int) -> Any:
        return listing.list_patients(ws.sf, actor, search or "", sort=sort, descending=desc,
                                     after=after, limit=n)

    return _marking(ws, "patients", PagedTableModel(
        ws.tasks, PATIENT_COLUMNS, fetch,
        lambda search, sort, _desc, ids: listing.patient_rows(
            ws.sf, actor, ids, search or "", sort=sort),
        default_sort="name"))


# ------------------------------------------------------------- prescriptions

STATUS_COLORS = {
    RxStatus.NEW: QColor("#0b4f71"),
    RxStatus.IN_PROGRESS: QColor("#6a4f00"),
    RxStatus.READY_FOR_CHECK: QColor("#00695c"),
    RxStatus.PARTIALLY_DISPENSED: QColor("#9a5b00"),
    RxStatus.ON_HOLD: QColor("#7b1fa2"),
    RxStatus.CANCELLED: MUTED_FG,
    RxStatus.TRANSFERRED: MUTED_FG,
    RxStatus.DISPENSED: QColor("#2e7d32"),
}

PRESCRIPTION_COLUMNS: list[Column[listing.PrescriptionRow]] = [
    # the widths fit every column in the 1280x800 window; Product takes the rest
    Column("rx", "Rx #", lambda r: r.rx_number, "rx_number", align=ALIGN_RIGHT, width=70),
    Column("status", "Status", lambda r: r.status.label + (
        f" (owed {r.owed_quantity})" if r.owed_quantity else ""), "status", width=100,
           foreground=lambda r: STATUS_COLORS.get(r.status),
           tooltip=lambda r: r.status.label + (
               f" (owed {r.owed_quantity})" if r.owed_quantity else "")),
    Column("patient", "Patient", lambda r: r.patient_name, "patient", width=150,
           tooltip=lambda r: r.patient_name),
    Column("product", "Product", lambda r: r.product, "product", width=150,
           bold=lambda r: r.schedule is not Schedule.NONE, stretch=True,
           tooltip=lambda r: r.product),
    Column("schedule", "Sched.", lambda r: schedule_label(r.schedule), None,
           align=ALIGN_CENTER, width=55,
           foreground=lambda r: CONTROLLED_FG if r.schedule is not Schedule.NONE else None),
    Column("qty", "Qty", lambda r: r.quantity, None, align=ALIGN_RIGHT, width=45),
    Column("refills", "Refills left", lambda r: r.refills_left, None, align=ALIGN_RIGHT,
           width=80),
    Column("written", "Written", lambda r: day(r.date_written), "date_written", width=95),
    Column("prescriber", "Prescriber", lambda r: r.prescriber_name, None, width=115,
           tooltip=lambda r: r.prescriber_name),
    Column("received", "Received", lambda r: local_time(r.created_at), "created_at", width=135),
]


def prescription_model(ws: Workspace, *, default_sort: str = "created_at",
                       descending: bool = True) -> PagedTableModel:
    actor = ws.actor

    def fetch(f: Any, sort: str, desc: bool, after: Any, n: int) -> Any:
        return listing.list_prescriptions(ws.sf, actor, f or listing.PrescriptionFilter(),
                                          sort=sort, descending=desc, after=after, limit=n)

    return _marking(ws, "prescriptions", PagedTableModel(
        ws.tasks, PRESCRIPTION_COLUMNS, fetch,
        lambda f, sort, _desc, ids: listing.prescription_rows(
            ws.sf, actor, ids, f or listing.PrescriptionFilter(), sort=sort),
        default_sort=default_sort, default_descending=descending))
