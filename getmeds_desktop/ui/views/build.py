"""Factories for the main window's areas (imported lazily, one module per screen)."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from ..workspace import Workspace


def dashboard(ws: Workspace) -> QWidget:
    from .dashboard import DashboardView

    view = DashboardView(ws)
    view.navigate.connect(ws.navigate)
    return view


def inventory(ws: Workspace) -> QWidget:
    from .inventory import InventoryView

    return InventoryView(ws)


def patients(ws: Workspace) -> QWidget:
    from .patients import PatientsView

    return PatientsView(ws)


def prescriptions(ws: Workspace) -> QWidget:
    from .prescriptions import PrescriptionsView

    return PrescriptionsView(ws)


def dispensing(ws: Workspace) -> QWidget:
    from .prescriptions import PrescriptionsView

    return PrescriptionsView(ws, queue=True)


def fills(ws: Workspace) -> QWidget:
    from .fills import FillsView

    return FillsView(ws)


def reports(ws: Workspace) -> QWidget:
    from .reports import ReportsView

    return ReportsView(ws)


def admin(ws: Workspace) -> QWidget:
    from .admin import AdminView

    return AdminView(ws)
