"""GUI test fixtures: one QApplication (pytest-qt), GetMeds style and settings names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QCoreApplication, QSettings

from getmeds_desktop import db
from getmeds_desktop.config import AppConfig, DatabaseTarget
from getmeds_desktop.startup import Connector
from getmeds_desktop.ui.gc_guard import GuiThreadCollector
from getmeds_desktop.ui.tasks import TaskManager
from tests.fixtures.data import World, build_world


@pytest.fixture(scope="session")
def qapp_args():
    return ["getmeds-tests"]


@pytest.fixture(autouse=True)
def _gui_app(qapp):
    from getmeds_desktop.ui.style import apply_style

    QCoreApplication.setOrganizationName("GetMeds")
    QCoreApplication.setApplicationName("GetMeds Desktop Tests")
    # every test starts like a first run: no filters, sorts or geometry left
    # over from the test before
    QSettings().clear()
    apply_style(qapp)
    # as in the application: Python's cycle collector only on the GUI thread
    collector = GuiThreadCollector()
    yield
    collector.stop()
    collector.deleteLater()


@pytest.fixture
def empty_config() -> AppConfig:
    return AppConfig(profiles={}, default_profile=None, auto_lock_minutes=None,
                     paper_size=None, pharmacy={}, locked=frozenset(), files=())


@pytest.fixture
def gui_world(fresh_db) -> Iterator[tuple[DatabaseTarget, World]]:
    """A committed database with staff of every role (password tests.fixtures.data.PASSWORD)."""
    engine = db.make_engine(fresh_db)
    world = build_world(db.session_factory(engine))
    yield DatabaseTarget(url=fresh_db, profile="test", label="Test database"), world
    engine.dispose()


@pytest.fixture
def connector() -> Iterator[Connector]:
    c = Connector(demo_size={"products": 80, "patients": 40, "prescriptions": 60})
    yield c
    c.close_all()


@pytest.fixture
def tasks(qtbot) -> Iterator[TaskManager]:
    t = TaskManager()
    yield t
    t.shutdown()
