"""The layer rule: services, models, reports, sync and the CLI never load Qt."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each check imports in a fresh interpreter


@pytest.mark.parametrize(
    "module",
    ["getmeds_desktop.models", "getmeds_desktop.services", "getmeds_desktop.cli",
     "getmeds_desktop.reports", "getmeds_desktop.sync", "getmeds_desktop.backup",
     "getmeds_desktop.config", "getmeds_desktop.db", "getmeds_desktop.startup",
     "getmeds_desktop.secrets", "getmeds_desktop.logs", "getmeds_desktop.enums",
     "getmeds_desktop.screening", "getmeds_desktop.rules"],
)
def test_module_loads_no_pyside6(module):
    code = (
        "import importlib, pkgutil, sys\n"
        f"m = importlib.import_module({module!r})\n"
        "if hasattr(m, '__path__'):\n"
        "    for info in pkgutil.walk_packages(m.__path__, m.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('PySide6', 'shiboken6'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_ui_and_the_app_entry_load_pyside6():
    code = (
        "import importlib, pkgutil, sys, getmeds_desktop as g\n"
        "for info in pkgutil.walk_packages(g.__path__, 'getmeds_desktop.'):\n"
        "    n = info.name\n"
        "    if n.startswith('getmeds_desktop.ui') or n in ('getmeds_desktop.app',\n"
        "            'getmeds_desktop.__main__', 'getmeds_desktop.migrations.env'):\n"
        "        continue\n"
        "    importlib.import_module(n)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('PySide6', 'shiboken6'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_module_outside_ui_imports_pyside6_even_lazily():
    import re
    from pathlib import Path

    import getmeds_desktop

    root = Path(getmeds_desktop.__file__).parent
    pattern = re.compile(r"^\s*(from|import)\s+(PySide6|shiboken6)\b", re.MULTILINE)
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.relative_to(root).parts[0] != "ui" and p.name != "app.py"
                 and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_screening_loads_no_database_layer():
    """The clinical screening is pure: no SQLAlchemy, no models, no Qt."""
    code = (
        "import sys, getmeds_desktop.screening as s\n"
        "s.default_knowledge()\n"
        "top = ('sqlalchemy', 'PySide6', 'shiboken6', 'alembic', 'psycopg')\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in top\n"
        "             or n.startswith(('getmeds_desktop.models', 'getmeds_desktop.db')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
