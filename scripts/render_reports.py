"""Generate every report from a fresh demo pharmacy and render page 1 of each to
docs/reports/<name>.png (pdftoppm from poppler-utils).

    python scripts/render_reports.py [--out docs/reports]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" /
                                        "reports"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from getmeds_desktop import db
    from getmeds_desktop.reports import REPORTS, ReportParams, generate
    from getmeds_desktop.services import staff
    from getmeds_desktop.services.demo import seed_demo

    work = Path(tempfile.mkdtemp(prefix="getmeds-reports-"))
    engine = db.make_engine(f"sqlite:///{work / 'demo.sqlite3'}")
    db.upgrade(engine)
    seed_demo(engine, products=800, patients=500, prescriptions=700)
    sf = db.session_factory(engine)
    admin = staff.actor_for_username(sf, "admin")
    with engine.connect() as c:
        patient = c.scalar(sa.text(
            "SELECT r.patient_id FROM prescriptions r JOIN dispenses d ON d.prescription_id = "
            "r.id GROUP BY r.patient_id ORDER BY count(*) DESC LIMIT 1"))
        dispense = c.scalar(sa.text(
            "SELECT d.id FROM dispenses d JOIN prescriptions r ON r.id = d.prescription_id "
            "JOIN products p ON p.id = r.product_id WHERE p.schedule = 'II' "
            "ORDER BY d.dispensed_at DESC LIMIT 1"))
    import uuid

    def as_uuid(v: object) -> uuid.UUID:
        return v if isinstance(v, uuid.UUID) else uuid.UUID(hex=str(v))

    today = dt.date.today()
    params = ReportParams(start=today - dt.timedelta(days=29), end=today, days=90,
                          schedule="II", patient_id=as_uuid(patient),
                          dispense_id=as_uuid(dispense))
    for name in REPORTS:
        pdf = work / f"{name}.pdf"
        result = generate(sf, admin, name, params, pdf)
        png = out / name
        dpi = "200" if name == "label" else "80"
        subprocess.run(["pdftoppm", "-png", "-r", dpi, "-f", "1", "-l", "1", "-singlefile",
                        str(pdf), str(png)], check=True)
        print(f"{name}: {result.pages} page(s) -> {png}.png")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
