"""The look: Fusion style, a calm palette and one stylesheet.

Colour carries meaning in tables: expired (red), expiring soon (amber), low
stock (amber text), controlled substances (purple badge). Text is never the
only carrier of state: each also has a word or icon.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#00796b"
ACCENT_DARK = "#005b4f"
EXPIRED_BG = QColor("#fde2e1")
EXPIRED_FG = QColor("#b3261e")
SOON_BG = QColor("#fff4d6")
LOW_FG = QColor("#9a5b00")
CONTROLLED_FG = QColor("#6a1b9a")
MUTED_FG = QColor("#6b7780")

STYLESHEET = f"""
QWidget {{ font-size: 10pt; }}
QMainWindow, QDialog {{ background: #f6f8f9; }}
QListWidget#navigation {{
    background: #263238; color: #eceff1; border: none; padding-top: 8px;
    min-width: 200px; max-width: 220px; font-size: 11pt; outline: 0;
}}
QListWidget#navigation::item {{ padding: 9px 14px; border-left: 3px solid transparent; }}
QListWidget#navigation::item:selected {{
    background: #37474f; color: white; border-left: 3px solid #4db6ac;
}}
QListWidget#navigation::item:hover {{ background: #2f3d44; }}
QLabel#viewTitle {{ font-size: 15pt; font-weight: 600; color: #263238; }}
QLabel#viewSubtitle, QLabel#hint, QLabel#requiredNote {{ color: #6b7780; }}
QLabel#loginTitle {{ color: {ACCENT_DARK}; font-size: 18pt; font-weight: 700; }}
QLabel[kind="error"] {{
    color: #b3261e; background: #fde2e1; border: 1px solid #f2b8b5;
    border-radius: 4px; padding: 6px 8px;
}}
QLabel[kind="info"] {{
    color: #0b4f71; background: #e1f2fb; border: 1px solid #b3dcf2;
    border-radius: 4px; padding: 6px 8px;
}}
QLabel[kind="warning"] {{
    color: #7a4b00; background: #fff4d6; border: 1px solid #f5d58a;
    border-radius: 4px; padding: 6px 8px;
}}
QFrame#demoLogins {{ background: #eef7f6; border: 1px solid #b2dfdb; border-radius: 6px; }}
QFrame#card {{
    background: white; border: 1px solid #dde3e6; border-radius: 8px;
}}
QFrame#card:hover {{ border-color: {ACCENT}; }}
QLabel#cardValue {{ font-size: 22pt; font-weight: 600; color: #263238; }}
QLabel#cardTitle {{ color: #546e7a; }}
QLineEdit, QComboBox, QSpinBox, QDateEdit, QPlainTextEdit, QTextEdit, QDoubleSpinBox {{
    background: white; border: 1px solid #c5ced3; border-radius: 4px; padding: 4px 6px;
    min-height: 20px;
}}
QLineEdit:focus, QComboBox:focus, QSpinBox:focus, QDateEdit:focus, QPlainTextEdit:focus,
QDoubleSpinBox:focus {{ border: 1px solid {ACCENT}; }}
*[invalid="true"] {{ border: 1px solid #b3261e; background: #fff8f7; }}
QPushButton, QToolButton {{
    background: white; border: 1px solid #b0bec5; border-radius: 4px; padding: 5px 12px;
}}
QPushButton:hover, QToolButton:hover {{ background: #eef3f5; }}
QToolBar#areaActions {{ background: transparent; border: none; spacing: 6px; padding: 0; }}
QToolBar#areaActions QToolButton#qt_toolbar_ext_button {{ padding: 2px; min-width: 20px; }}
QPushButton:default, QPushButton#primary {{
    background: {ACCENT}; color: white; border: 1px solid {ACCENT_DARK};
}}
QPushButton:default:hover, QPushButton#primary:hover {{ background: {ACCENT_DARK}; }}
QPushButton:disabled, QToolButton:disabled {{ color: #9aa5ab; background: #f1f3f4; }}
QTableView {{
    background: white; alternate-background-color: #f7f9fa; gridline-color: #e6eaec;
    selection-background-color: #b2dfdb; selection-color: #1b1f22; border: 1px solid #dde3e6;
}}
QTableView:focus {{ border: 1px solid {ACCENT}; }}
QHeaderView::section {{
    background: #eceff1; border: none; border-right: 1px solid #dde3e6;
    border-bottom: 1px solid #cfd8dc; padding: 5px 6px; font-weight: 600;
}}
QStatusBar QLabel {{ padding: 0 8px; color: #37474f; }}
QLabel#statusConnection[state="connected"] {{ color: #2e7d32; }}
QLabel#statusConnection[state="reconnecting"] {{ color: #b26a00; }}
QLabel#statusConnection[state="offline"] {{ color: #b3261e; }}
QGroupBox {{
    border: 1px solid #dde3e6; border-radius: 6px; margin-top: 14px; background: white;
    padding: 10px 8px 8px 8px;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: #37474f;
    font-weight: 600; }}
QTabWidget::pane {{ border: 1px solid #dde3e6; background: white; }}
QWidget#lockPage {{ background: #263238; }}
QLabel#lockTitle {{ color: #eceff1; font-size: 20pt; font-weight: 700; }}
QLabel#lockDetail {{ color: #cfd8dc; font-size: 11pt; }}
"""


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = app.palette()
    pal.setColor(QPalette.ColorRole.Highlight, QColor("#b2dfdb"))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#1b1f22"))
    pal.setColor(QPalette.ColorRole.Link, QColor(ACCENT_DARK))
    app.setPalette(pal)
    app.setStyleSheet(STYLESHEET)
