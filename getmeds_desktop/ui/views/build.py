"""Factories for the main window's areas (imported lazily, one module per screen)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from ..workspace import Workspace


def _placeholder(text: str) -> QWidget:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return label


def dashboard(ws: Workspace) -> QWidget:
    return _placeholder("Dashboard")


def inventory(ws: Workspace) -> QWidget:
    return _placeholder("Inventory")


def patients(ws: Workspace) -> QWidget:
    return _placeholder("Patients")


def prescriptions(ws: Workspace) -> QWidget:
    return _placeholder("Prescriptions")


def dispensing(ws: Workspace) -> QWidget:
    return _placeholder("Dispensing queue")


def reports(ws: Workspace) -> QWidget:
    return _placeholder("Reports")


def admin(ws: Workspace) -> QWidget:
    return _placeholder("Administration")
