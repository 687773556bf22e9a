"""Every report generated from real data and read back with pypdf."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from pathlib import Path

import pytest
from pypdf import PdfReader

from getmeds_desktop.models import Dispense, Schedule, StocktakeScope
from getmeds_desktop.reports import REPORTS, ReportParams, generate
from getmeds_desktop.services import (
    catalog,
    clock,
    dispensing,
    fills,
    inventory,
    settings,
    stocktake,
)
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import PermissionDenied, ValidationError
from tests.fixtures.clock import RUN_DAY as TODAY
from tests.fixtures.data import NO_SCAN

PERIOD = ReportParams(start=TODAY - dt.timedelta(days=30), end=TODAY, days=60,
                      schedule="II")


def text_of(path: Path) -> str:
    reader = PdfReader(str(path))
    return "\n".join(page.extract_text() for page in reader.pages)


def pages_of(path: Path) -> int:
    return len(PdfReader(str(path)).pages)


@pytest.fixture
def shop(world):
    """A small pharmacy with known numbers."""
    s = settings.get_settings(world.sf)
    settings.update_settings(world.sf, world.admin, {
        "pharmacy_name": "Riverside Test Pharmacy", "address": "9 River Rd, Albany, NY",
        "dea_number": "BR1234563"}, expected_version=s.version)
    cat = catalog.create_category(world.sf, world.admin, "Reporting cat")
    amox = world.product("Reportamox", category_id=cat.id, reorder_level=100,
                         reorder_quantity=50, pack_size=25)
    oxy = world.product("Reportoxy", schedule=Schedule.II, strength="5 mg", category_id=cat.id)
    world.receive(amox.id, 40, lot="RA-1", days=20, cost="0.50")  # expiring soon
    world.receive(oxy.id, 100, lot="RO-1", days=300, cost="1.25")
    pat = world.patient("Rita", "Reportson", allergies=("Sulfa",))
    rx = world.rx(pat.id, oxy.id, quantity=12)
    d = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                        no_scan_reason=NO_SCAN))
    # a count with a variance for the register
    st = stocktake.start_stocktake(world.sf, world.pharmacist, StocktakeScope.CONTROLLED)
    for line in stocktake.count_lines(world.sf, world.pharmacist, st.id):
        counted = line.expected - 2 if line.lot_number == "RO-1" else line.expected
        stocktake.enter_count(world.sf, world.pharmacist, line.line_id, counted, "Broken tablets")
    stocktake.post_stocktake(world.sf, world.pharmacist, st.id)
    return world, amox, oxy, pat, rx, d


def make(world, name, tmp_path, params=PERIOD, actor=None):
    out = tmp_path / f"{name}.pdf"
    result = generate(world.sf, actor or world.admin, name, params, out)
    assert result.path == out and out.stat().st_size > 1000
    return out, text_of(out)


def test_every_report_has_header_footer_and_page_numbers(shop, tmp_path):
    world, _amox, oxy, pat, rx, d = shop
    from getmeds_desktop.services import deaforms

    oxy_lot = inventory.lots_of_product(world.sf, oxy.id)[0].id
    forms = {
        "dea-41": deaforms.record_destruction(world.sf, world.pharmacist,
                                              deaforms.DestructionRequest(
            lines=[deaforms.FormLine(oxy_lot, 1)], destroyed_on=clock.today(),
            method="Chemical digestion", place="Back room",
            witness1_id=world.pharmacist.staff_id, witness2_id=world.technician.staff_id)),
        "dea-106": deaforms.report_theft_or_loss(world.sf, world.pharmacist,
                                                 deaforms.TheftLossRequest(
            lines=[deaforms.FormLine(oxy_lot, 1)], discovered_on=clock.today(),
            loss_type="customer_theft", police_notified=False))}
    for name in REPORTS:
        params = PERIOD
        if name in forms:
            params = ReportParams(form_id=forms[name].id)
        if name == "patient-history":
            params = ReportParams(patient_id=pat.id)
        if name == "label":
            continue
        if name == "recall":
            params = ReportParams(lot_id=inventory.lots_of_product(world.sf, rx.product_id)[0].id)
        if name == "dea-inventory":
            from getmeds_desktop.services import dea_inventory

            params = ReportParams(inventory_id=dea_inventory.take_inventory(
                world.sf, world.pharmacist, "biennial", "close", [
                    dea_inventory.Count(ln.lot_id, ln.on_hand)
                    for ln in dea_inventory.count_sheet(world.sf, world.pharmacist)]).id)
        out, text = make(world, name, tmp_path, params)
        n = pages_of(out)
        assert "Riverside Test Pharmacy" in text and "DEA BR1234563" in text, name
        assert REPORTS[name].title in text, name
        # the total is drawn by a form defined at the end; pypdf reads it on its own line
        assert re.search(rf"Page 1 of\s*{n}\b", text), name
        assert re.search(rf"Page {n} of\s*{n}\b", text), name
        assert "Generated by Test Admin" in text and "GetMeds Desktop" in text, name


def test_inventory_totals(shop, tmp_path):
    world, amox, oxy, *_ = shop
    _, text = make(world, "inventory", tmp_path)
    assert "Reporting cat" in text and "Reportamox" in text and "Reportoxy 5 mg" in text
    # 40 x 0.50 + (100 - 12 - 2) x 1.25 = 20.00 + 107.50
    assert "$127.50" in text
    value = inventory.stock_value(world.sf)
    assert f"${value.total:,.2f}" in text  # grand total equals the stock value service


def test_reorder_and_expiry(shop, tmp_path):
    world, amox, *_ = shop
    _, text = make(world, "reorder", tmp_path)
    # on hand 40, level 100, reorder 50 -> need 110 -> 5 packs of 25
    assert re.search(r"Reportamox.*\n?.*40\s+100\s+25\s+125", text)
    _, text = make(world, "expiry", tmp_path)
    assert "Lots expiring within 60 days" in text and "RA-1" in text and "$20.00" in text


def test_dispensing_log(shop, tmp_path):
    world, amox, oxy, pat, rx, d = shop
    _, text = make(world, "dispensing-log", tmp_path)
    assert str(rx.rx_number) in text and "Reportson, Rita" in text and "RO-1" in text
    assert "Test Pharmacist" in text and "Dispenses per day" in text


def test_controlled_register_closing_balance_equals_the_ledger(shop, tmp_path):
    world, amox, oxy, pat, rx, d = shop
    _, text = make(world, "controlled-register", tmp_path,
                   ReportParams(start=TODAY - dt.timedelta(days=1), end=TODAY, schedule="II"))
    on_hand = inventory.on_hand(world.sf, oxy.id)
    assert on_hand == 86
    section = text[text.index("Reportoxy 5 mg"):]
    assert "Opening balance" in section and "Receipt" in section and "Dispense" in section
    assert f"Rx {rx.rx_number} · Reportson, Rita" in section
    closing = re.search(r"Closing balance\s+\+(\d+) / -(\d+)\s+(\d+)", section)
    assert closing is not None and int(closing.group(3)) == on_hand
    assert (int(closing.group(1)), int(closing.group(2))) == (100, 14)
    assert "Variance at the last count" in section and "-2" in section
    # III-V is a separate register: Schedule II products are not in it
    _, other = make(world, "controlled-register", tmp_path,
                    ReportParams(start=TODAY - dt.timedelta(days=1), end=TODAY,
                                 schedule="III-V"))
    assert "Reportoxy" not in other


def test_patient_history_staff_demographics_audit(shop, tmp_path):
    world, amox, oxy, pat, rx, d = shop
    _, text = make(world, "patient-history", tmp_path, ReportParams(patient_id=pat.id))
    assert "Rita Reportson" in text and "Sulfa" in text and "Reportoxy 5 mg" in text
    _, text = make(world, "staff", tmp_path)
    assert "Test Pharmacist" in text and world.doctor.username in text
    _, text = make(world, "demographics", tmp_path)
    assert "Patients by age band and sex" in text and "65-79" in text
    # audit times come from the database server's clock: the period is the
    # server's day, not the test clock's
    import sqlalchemy as sa

    with world.sf() as s:
        last = s.scalar(sa.text("SELECT max(occurred_at) FROM audit_log"))
    last = last if isinstance(last, dt.datetime) else dt.datetime.fromisoformat(str(last))
    day = (last if last.tzinfo else last.replace(tzinfo=dt.UTC)).astimezone().date()
    _, text = make(world, "audit", tmp_path,
                   ReportParams(start=day - dt.timedelta(days=1), end=day))
    flat = " ".join(text.split())
    assert "Prescription Rx" in flat and "Dispense Rx" in flat and world.pharmacist.username in text
    assert "Reportoxy" in flat  # names, not ids
    import re

    assert not re.search(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-", flat)


def test_label_fits_one_label_page(shop, tmp_path):
    world, amox, oxy, pat, rx, d = shop
    out = tmp_path / "label.pdf"
    generate(world.sf, world.pharmacist, "label", ReportParams(dispense_id=d.dispense_id), out)
    reader = PdfReader(str(out))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (288, 180)  # 4 x 2.5 in
    text = text_of(out)
    assert f"Rx {rx.rx_number}" in text and "Rita Reportson" in text
    assert "Reportoxy 5 mg" in text and "Federal law prohibits the transfer" in text
    assert "No refills" in text and "Filled TP" in text and "RPh ____" in text
    flat = " ".join(text.split())
    # the discard-by date: the lot's expiry (sooner than a year), and the NDC
    assert "Discard after" in flat
    assert re.search(r"NDC \d{5}-\d{4}-\d{2}", flat)
    # verified: the verifying pharmacist's initials are on the label (issue: the
    # verifying pharmacist is printed on the label)
    fills.verify(world.sf, world.pharmacist2, d.dispense_id)
    generate(world.sf, world.pharmacist, "label", ReportParams(dispense_id=d.dispense_id), out)
    assert "RPh TP" in text_of(out)


def test_paper_size_setting(shop, tmp_path):
    world, *_ = shop
    s = settings.get_settings(world.sf)
    settings.update_settings(world.sf, world.admin, {"paper_size": "a4"},
                             expected_version=s.version)
    out, _ = make(world, "staff", tmp_path)
    box = PdfReader(str(out)).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)


def test_permissions_and_parameters(shop, tmp_path):
    world, *_ = shop
    with pytest.raises(PermissionDenied):
        generate(world.sf, world.pharmacist, "audit", PERIOD, tmp_path / "a.pdf")
    with pytest.raises(PermissionDenied):
        generate(world.sf, world.clerk, "inventory", PERIOD, tmp_path / "b.pdf")
    with pytest.raises(ValidationError, match="needs a period"):
        generate(world.sf, world.admin, "dispensing-log", ReportParams(), tmp_path / "c.pdf")
    with pytest.raises(ValidationError, match="register"):
        generate(world.sf, world.admin, "controlled-register",
                 ReportParams(start=TODAY, end=TODAY), tmp_path / "d.pdf")
    with pytest.raises(ValidationError, match="no report 'weekly'"):
        generate(world.sf, world.admin, "weekly", PERIOD, tmp_path / "e.pdf")
    assert not list(tmp_path.glob("*.pdf")) and not list(tmp_path.glob(".*part"))


def test_long_reports_repeat_the_table_header(world, tmp_path):
    for i in range(120):
        p = world.product(f"Longlist {i:03d}", reorder_level=10)
        world.receive(p.id, 1, cost="2.00")
    out, text = make(world, "reorder", tmp_path)
    n = pages_of(out)
    assert n >= 3
    reader = PdfReader(str(out))
    for page in reader.pages:
        assert "Last supplier" in page.extract_text()  # header on every page


def test_money_formatting():
    from getmeds_desktop.reports.base import money

    assert money(decimal.Decimal("1234.5")) == "$1,234.50"


# ---------------------------------------------------- data without a PDF, markup


def test_report_data_comes_as_rows_without_a_pdf(shop):
    from getmeds_desktop.reports import data

    world, amox, oxy, pat, rx, d = shop
    with world.sf() as s:
        assert "Reporting cat" in [c.name for c in data.stock_by_category(s)]
        lines = [x for x in data.stock_lines(s) if x.product.startswith("Report")]
        assert {x.product for x in lines} == {"Reportamox 500 mg capsule",
                                              "Reportoxy 5 mg capsule"}
        lo, hi = clock.day_range(TODAY - dt.timedelta(days=1), TODAY)
        register = [e for p in data.register_products(s, "II", lo, hi) if p.id == oxy.id
                    for e in data.register_lines(s, p.id, lo, hi)]
        assert [e.kind.value for e in register] == ["receipt", "dispense", "count"]
        assert [e.balance for e in register] == [100, 88, 86]
        per_day, units = data.dispenses_per_day(s, lo, hi)
        assert sum(per_day.values()) >= 1 and units >= 12
        history = data.patient_history(s, pat.id)
        assert history.name == "Rita Reportson" and history.allergies == ("Sulfa",)


def test_chart_buckets_by_day_week_and_month():
    from getmeds_desktop.reports.data import chart_buckets

    day = dt.date(2026, 3, 2)
    assert chart_buckets({day: 3}, day, day).values == [3]
    weeks = chart_buckets({day: 3}, dt.date(2026, 1, 1), dt.date(2026, 6, 30))
    assert weeks.title == "Dispenses per week" and sum(weeks.values) == 3
    months = chart_buckets({day: 3, dt.date(2027, 1, 5): 2}, dt.date(1, 1, 1),
                           dt.date(9999, 12, 31))
    assert months.title == "Dispenses per month" and len(months.values) == 11
    assert months.values[0] == 3 and months.values[-1] == 2


def test_markup_in_names_and_notes_is_printed_as_written(world, tmp_path):
    """A note with "<rash" raised inside ReportLab; a name "Smith <Jr>" lost "<Jr>"."""
    pat = world.patient("Sam", "Smith <Jr>", allergies=())
    from getmeds_desktop.services import patients

    info = patients.get_patient(world.sf, world.clerk, pat.id)
    patients.update_patient(world.sf, world.clerk, pat.id, patients.PatientDraft(
        first_name="Sam", last_name="Smith <Jr>", date_of_birth=info.date_of_birth,
        address_line="1 <b>Bold</b> St & Co",
        allergies=[patients.AllergyDraft("Sulfa <& friends>", reaction="<rash")]),
        expected_version=info.version)
    _, text = make(world, "patient-history", tmp_path, ReportParams(patient_id=pat.id))
    assert "Smith <Jr>" in text and "<rash" in text and "Sulfa <& friends>" in text
    assert "1 <b>Bold</b> St & Co" in text


def test_no_private_reportlab_attributes_are_used():
    import re

    root = Path(__file__).resolve().parents[2] / "getmeds_desktop" / "reports"
    found = []
    for path in root.glob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in re.finditer(r"([A-Za-z0-9_\)\]]+)\._(?!_)[A-Za-z]\w*", line):
                if m.group(1) not in ("self", "part"):  # our own objects
                    found.append(f"{path.name}:{n}: {m.group(0)}")
            if re.search(r"super\(\)\._(?!_)", line):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert found == []


def test_the_register_lists_products_with_entries_or_a_balance_only(world, tmp_path):
    from getmeds_desktop.services import clock

    gone = world.product("Goneoxy", schedule=Schedule.II, strength="10 mg")
    kept = world.product("Keptoxy", schedule=Schedule.II, strength="10 mg")
    start = clock.now()
    with clock.travel(start - dt.timedelta(days=60)):
        lot = world.receive(gone.id, 5, lot="G-1")
        world.receive(kept.id, 5, lot="K-1")
        inventory.adjust_stock(world.sf, world.pharmacist, lot.lot_id, -5,
                               "Damaged (bottle broken)")
    _, text = make(world, "controlled-register", tmp_path,
                   ReportParams(start=TODAY - dt.timedelta(days=1), end=TODAY, schedule="II"))
    assert "Keptoxy" in text  # a balance and no entries in the period: listed
    assert "Goneoxy" not in text  # nothing left and nothing in the period
    assert "times are the pharmacy's local time" in " ".join(text.split())


def test_a_long_pharmacy_name_never_runs_over_the_rx_number(shop, tmp_path):
    """Cut or shrunk to the room left of the Rx number (found on a real label)."""
    from pypdf import PdfReader as Reader

    world, amox, oxy, pat, rx, d = shop
    s = settings.get_settings(world.sf)
    settings.update_settings(world.sf, world.admin, {
        "pharmacy_name": "Saint Bartholomew's Community Health Cooperative Pharmacy of Albany"},
        expected_version=s.version)
    out = tmp_path / "label.pdf"
    generate(world.sf, world.pharmacist, "label", ReportParams(dispense_id=d.dispense_id), out)
    spans: list[tuple[float, float, str]] = []

    def visit(text, _cm, tm, _font, size):
        if text.strip():
            spans.append((tm[4], tm[5], text))

    Reader(str(out)).pages[0].extract_text(visitor_text=visit)
    top = max(y for _x, y, _t in spans)
    header = [(x, t) for x, y, t in spans if abs(y - top) < 1]
    name = next(x for x, t in header if t.startswith("Saint"))
    rx_x = next(x for x, t in header if t.startswith("Rx "))
    assert name < rx_x
    shown = next(t for _x, t in header if t.startswith("Saint"))
    assert shown.rstrip().endswith("…") and "Albany" not in shown  # cut, with an ellipsis


def test_the_label_dates_the_fill_in_the_pharmacys_time_zone(shop, tmp_path):
    """A label printed on a workstation whose own zone differs from the
    pharmacy's shows the pharmacy's date (the one its database's rules judge)."""
    world, amox, oxy, pat, rx, d = shop
    out = tmp_path / "label.pdf"
    with world.sf() as s:
        at = s.get(Dispense, d.dispense_id).dispensed_at
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):  # UTC+14 and UTC-12
        clock.set_zone(zone)
        generate(world.sf, world.pharmacist, "label", ReportParams(dispense_id=d.dispense_id),
                 out)
        local_day = at.astimezone(clock.zone()).date()
        assert f"Filled {local_day:%m/%d/%Y}" in " ".join(text_of(out).split()), zone


def test_the_footer_never_runs_under_the_page_number(shop, tmp_path):
    """A long "generated by" name put the footer's text under "Page n of m"
    (seen on the DEA worksheets): the footer goes onto two lines instead."""
    from pypdf import PdfReader as Reader
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from getmeds_desktop.models import Role
    from getmeds_desktop.reports.base import FONT
    from getmeds_desktop.services import staff as staff_service

    world, *_ = shop
    info = staff_service.create_staff(
        world.sf, world.admin, username="longnamed", role=Role.ADMIN,
        full_name="Maximiliana Konstantinopoulou-Papadimitriou-Vanderbilt",
        password="long named password 1")
    actor = staff_service.actor_for_username(world.sf, info.username)
    out, _text = make(world, "staff", tmp_path, actor=actor)
    spans: list[tuple[float, float, str]] = []

    def visit(text, _cm, tm, *_font):
        if text.strip() and tm[5] < 60:  # the footer, near the page's bottom
            spans.append((tm[4], tm[5], text))

    Reader(str(out)).pages[0].extract_text(visitor_text=visit)
    page = [s for s in spans if s[2].startswith("Page ")]
    made = [s for s in spans if s[2].startswith("Generated by")]
    assert page and made, spans
    px = page[0][0]
    for x, _y, text in made:
        assert x + stringWidth(text.strip(), FONT, 7) < px, (text, px)
    assert any("ll times are the pharmacy's local time" in s[2] for s in spans), spans
