"""Icons for actions and areas (line icons shipped in resources/icons)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

DEFAULT_COLOR = "#37474f"


@cache
def _svg(name: str) -> str | None:
    try:
        return (resources.files("getmeds_desktop") / "resources" / "icons" / f"{name}.svg"
                ).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None


@cache
def icon(name: str, color: str = DEFAULT_COLOR) -> QIcon:
    """A crisp icon at the common sizes; an empty icon if the name is unknown."""
    text = _svg(name)
    if text is None:
        return QIcon()
    data = QByteArray(text.replace("#COLOR#", color).encode())
    renderer = QSvgRenderer(data)
    result = QIcon()
    for size in (16, 20, 24, 32, 48):
        image = QImage(QSize(size, size), QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        result.addPixmap(QPixmap.fromImage(image))
    return result
