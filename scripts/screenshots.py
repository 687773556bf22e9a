"""Render every main screen of the demo pharmacy (offscreen) to docs/screenshots/.

    python scripts/screenshots.py [--out docs/screenshots] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" /
                                        "screenshots"))
    p.add_argument("--scale", default="1")
    args = p.parse_args()
    os.environ["QT_SCALE_FACTOR"] = args.scale
    home = Path(tempfile.mkdtemp(prefix="getmeds-shots-"))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        os.environ[var] = str(home / var.lower())

    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("GetMeds")
    QCoreApplication.setApplicationName("GetMeds Desktop Screenshots")
    app = QApplication(sys.argv[:1])
    from getmeds_desktop.config import load_config
    from getmeds_desktop.services import staff
    from getmeds_desktop.startup import Connector, demo_target
    from getmeds_desktop.ui.main_window import MainWindow
    from getmeds_desktop.ui.style import apply_style
    from getmeds_desktop.ui.workspace import Workspace

    apply_style(app)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    connector = Connector(demo_size={"products": 1500, "patients": 800, "prescriptions": 900})
    opened = connector.open(demo_target(home))
    actor = staff.actor_for_username(opened.sf, "admin")
    ws = Workspace(opened, actor, load_config([], home / "none.toml"))
    win = MainWindow(ws)
    win.resize(1360, 820)
    win.show()

    def settle(ms: int = 600) -> None:
        ws.tasks.wait_idle()
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()
        ws.tasks.wait_idle()
        app.processEvents()

    for key in win.area_keys():
        win.show_area(key)
        settle(900)
        view = win.views[key]
        table = getattr(view, "table", None)
        if table is not None and view.model.rowCount():
            table.selectRow(2)
        settle(200)
        win.grab().save(str(out / f"{key}.png"))
        print(f"wrote {out / f'{key}.png'}")

    # Administration > Backups, after "Copy now"
    admin = win.show_area("admin")
    if admin.backups is not None:
        admin.tabs.setCurrentWidget(admin.backups)
        settle(300)
        admin.backups.back_up_now()
        settle(600)
        win.grab().save(str(out / "backups.png"))
        print(f"wrote {out / 'backups.png'}")
        admin.tabs.setCurrentIndex(0)

    # A dispense in progress: a prescription of the queue that is in stock,
    # preferably one with a safety warning to acknowledge.
    queue = win.show_area("dispensing")
    settle()
    if queue.model.rowCount():
        from getmeds_desktop.services import dispensing
        from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

        chosen = queue.model.row_at(0).id
        for row in range(min(queue.model.rowCount(), 60)):
            rx_id = queue.model.row_at(row).id
            try:
                preview = dispensing.preview_dispense(ws.sf, ws.actor, rx_id, None)
            except Exception:
                continue
            if preview.short == 0 and not preview.problem:
                chosen = rx_id
                if preview.warnings:
                    break
        dlg = DispenseDialog(ws, chosen, win)
        dlg.show()
        settle(900)
        dlg.grab().save(str(out / "dispense.png"))
        print(f"wrote {out / 'dispense.png'}")
        dlg.close()
    # Patients > Import: a CSV file whose columns the mapping guessed, after Check
    from getmeds_desktop.ui.dialogs.data_io import CsvImportDialog, NdcImportDialog

    sample = home / "patients.csv"
    sample.write_text("Surname,Given name,DOB,Sex,Phone,Allergies\n"
                      "Okafor,Ada,1961-04-02,F,(555) 201-3344,Penicillin\n"
                      "Brandt,Otto,07/30/1948,M,,\n"
                      "Lee,Ann,2199-01-01,F,,\n", encoding="utf-8")
    csv_dlg = CsvImportDialog(ws, "patients", win)
    csv_dlg.show()
    csv_dlg.file.setText(str(sample))
    csv_dlg.load()
    settle(300)
    csv_dlg.start(dry_run=True)
    settle(300)
    csv_dlg.grab().save(str(out / "csv-import.png"))
    print(f"wrote {out / 'csv-import.png'}")
    csv_dlg.close()
    ndc_dlg = NdcImportDialog(ws, win)
    ndc_dlg.show()
    settle(200)
    ndc_dlg.grab().save(str(out / "ndc-import.png"))
    print(f"wrote {out / 'ndc-import.png'}")
    ndc_dlg.close()
    ws.tasks.shutdown()
    connector.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
