"""Dashboard: counts that open the matching filtered list, and two charts."""

from __future__ import annotations

from typing import Any

from PySide6.QtCharts import (
    QAreaSeries,
    QBarCategoryAxis,
    QBarSet,
    QChart,
    QChartView,
    QDateTimeAxis,
    QHorizontalBarSeries,
    QLineSeries,
    QValueAxis,
)
from PySide6.QtCore import QDate, QDateTime, QMargins, Qt, QTime, QTimer, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ...enums import FillStatus, RxStatus
from ...services import dashboard
from ..style import ACCENT
from ..tablemodels.models import local_time
from ..workspace import Workspace
from .base import Area

REFRESH_COALESCE_MS = 700  # after the first change, wait for more, then refresh once


class Card(QFrame):
    clicked = Signal()

    def __init__(self, name: str, title: str, tip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.setProperty("cardName", name)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(tip)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 12, 16, 12)
        self.value = QLabel("–")
        self.value.setObjectName("cardValue")
        self.value.setAccessibleName(f"{title} count")
        self.title = QLabel(title)
        self.title.setObjectName("cardTitle")
        self.title.setWordWrap(True)
        lay.addWidget(self.value)
        lay.addWidget(self.title)
        self.setMinimumWidth(150)

    def set_value(self, n: int | None) -> None:
        self.value.setText("–" if n is None else f"{n:,}")

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


CARDS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    # name, title, tooltip, area, filter
    ("patients", "Patients", "All active patients", "patients", {}),
    ("new", "New prescriptions", "Entered, not yet started", "prescriptions",
     {"statuses": (RxStatus.NEW,)}),
    ("to_verify", "To verify", "Filled, waiting for a pharmacist's final check",
     "fills", {"fill_status": FillStatus.FILLED}),
    ("ready_for_pickup", "Ready for pickup", "Verified, waiting for the patient", "fills",
     {"fill_status": FillStatus.VERIFIED}),
    ("partially_dispensed", "Owed (partial fills)", "Part dispensed, the rest owed",
     "prescriptions", {"statuses": (RxStatus.PARTIALLY_DISPENSED,)}),
    ("on_hold", "On hold", "Held prescriptions", "prescriptions",
     {"statuses": (RxStatus.ON_HOLD,)}),
    ("low", "Low-stock products", "At or below their reorder level", "inventory",
     {"low_stock": True}),
    ("expiring", "Lots expiring in 30 days", "Products with a lot expiring within 30 days",
     "inventory", {"expiring_within_days": 30}),
    ("expired", "Expired lots on hand", "Products with an expired lot still on the shelf",
     "inventory", {"expired": True}),
]


class DashboardView(Area):
    navigate = Signal(str, object)  # area key, filter

    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(ws, "Dashboard", "", parent)
        self.add_action("actionRefreshDashboard", "Refresh", "refresh", self.refresh, "F5")
        self.as_of = QLabel("")
        self.as_of.setObjectName("viewSubtitle")
        self.body.addWidget(self.as_of)
        grid = QGridLayout()
        grid.setSpacing(12)
        self.cards: dict[str, Card] = {}
        for i, (name, title, tip, area, filt) in enumerate(CARDS):
            card = Card(name, title, tip)
            card.clicked.connect(lambda a=area, f=filt: self.navigate.emit(a, f))
            self.cards[name] = card
            grid.addWidget(card, i // 5, i % 5)
        self.body.addLayout(grid)
        charts = QHBoxLayout()
        charts.setSpacing(12)
        self.dispense_chart = QChartView()
        self.dispense_chart.setObjectName("chartDispenses")
        self.value_chart = QChartView()
        self.value_chart.setObjectName("chartStockValue")
        for v in (self.dispense_chart, self.value_chart):
            v.setRenderHint(QPainter.RenderHint.Antialiasing)
            v.setMinimumHeight(280)
            charts.addWidget(v, 1)
        self.body.addLayout(charts, 1)
        self.data: dashboard.DashboardData | None = None
        # many changes (ten workstations dispensing) make one refresh a second
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_COALESCE_MS)
        self._refresh_timer.timeout.connect(
            lambda: self.refresh() if self.isVisible() else None)
        ws.data_changed.connect(lambda *_: self._refresh_timer.start()
                                if not self._refresh_timer.isActive() else None)

    def activate(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.ws.run(lambda: dashboard.dashboard(self.ws.sf, self.ws.actor), self._show,
                    self.show_error)

    def _show(self, d: dashboard.DashboardData) -> None:
        self.data = d
        self.as_of.setText(f"As of {local_time(d.as_of)}")
        values: dict[str, int | None] = {
            "patients": d.patients, "low": d.low_stock, "expiring": d.expiring_30,
            "expired": d.expired_on_hand,
        }
        for st in (RxStatus.NEW, RxStatus.PARTIALLY_DISPENSED, RxStatus.ON_HOLD):
            values[st.value] = d.waiting.get(st, 0) if d.waiting is not None else None
        values["to_verify"], values["ready_for_pickup"] = d.to_verify, d.ready_for_pickup
        for name, card in self.cards.items():
            v = values.get(name)
            card.set_value(v)
            card.setVisible(v is not None)
        self._dispense_chart(d)
        self._value_chart(d)

    def _dispense_chart(self, d: dashboard.DashboardData) -> None:
        chart = QChart()
        chart.setTitle("Dispenses per day, last 30 days")
        chart.legend().hide()
        chart.setMargins(QMargins(4, 4, 4, 4))
        upper = QLineSeries()
        lower = QLineSeries()
        for day_, n in d.dispenses_per_day:
            ms = QDateTime(QDate(day_.year, day_.month, day_.day), QTime(12, 0))
            upper.append(ms.toMSecsSinceEpoch(), n)
            lower.append(ms.toMSecsSinceEpoch(), 0)
        area = QAreaSeries(upper, lower)
        fill = QColor(ACCENT)
        fill.setAlpha(70)
        area.setColor(fill)
        pen = area.pen()
        pen.setColor(QColor(ACCENT))
        pen.setWidth(2)
        area.setPen(pen)
        chart.addSeries(area)
        axis_x = QDateTimeAxis()
        axis_x.setFormat("MMM d")
        axis_x.setTickCount(6)
        chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
        area.attachAxis(axis_x)
        axis_y = QValueAxis()
        top = max((n for _, n in d.dispenses_per_day), default=0)
        axis_y.setRange(0, max(top, 4))
        axis_y.applyNiceNumbers()
        axis_y.setLabelFormat("%d")
        chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
        area.attachAxis(axis_y)
        self._keep = (upper, lower)  # the area series refers to them
        self.dispense_chart.setChart(chart)
        # a role that may not see dispenses has no chart, not an empty one
        self.dispense_chart.setVisible(bool(d.dispenses_per_day))

    def _value_chart(self, d: dashboard.DashboardData) -> None:
        chart = QChart()
        chart.setTitle("Stock value at cost by category (thousand USD)")
        chart.legend().hide()
        chart.setMargins(QMargins(4, 4, 4, 4))
        rows = list(d.value_by_category[:10])[::-1]
        bars = QBarSet("Value")
        bars.setColor(QColor("#455a64"))
        for _, v in rows:
            bars.append(float(v) / 1000)
        series = QHorizontalBarSeries()
        series.append(bars)
        chart.addSeries(series)
        axis_y = QBarCategoryAxis()
        axis_y.append([name for name, _ in rows])
        chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(axis_y)
        axis_x = QValueAxis()
        top = max((float(v) / 1000 for _, v in rows), default=0.0)
        axis_x.setRange(0, max(top, 1.0))
        axis_x.applyNiceNumbers()
        axis_x.setLabelFormat("%.0f")
        chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(axis_x)
        self.value_chart.setChart(chart)
        self.value_chart.setVisible(bool(rows))  # nothing to show (or not for this role)

