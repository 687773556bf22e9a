"""``getmeds --smoke-test``: what IT and the build run to prove a build works.
(packaging/build.py runs it on the frozen bundle in CI.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_test_passes_and_says_what_it_checked(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GETMEDS_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "c"),
               XDG_DATA_HOME=str(tmp_path / "d"), XDG_STATE_HOME=str(tmp_path / "s"))
    out = subprocess.run([sys.executable, "-m", "getmeds_desktop.app", "--smoke-test"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr == ""
    lines = out.stdout
    for step in ("migrated to", "signed in as admin", "opened inventory", "opened dispensing",
                 "opened admin", "wrote the inventory report", "keyring:", "OK in"):
        assert step in lines, step


def test_a_broken_build_fails_the_smoke_test_with_the_reason(qapp, monkeypatch, capsys):
    """In-process, with report writing broken: exit code 1 and the reason."""
    import getmeds_desktop.reports as reports
    from getmeds_desktop.ui.smoke import run_smoke_test

    def broken(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise OSError("fonts folder missing from the bundle")

    monkeypatch.setattr(reports, "generate", broken)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert run_smoke_test() == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.err and "fonts folder missing" in captured.err
    assert "opened inventory" in captured.out  # it got that far


@pytest.mark.parametrize("exe", ["getmeds", "getmeds-admin"])
def test_one_version_everywhere(exe):
    from importlib.metadata import version

    out = subprocess.run([Path(sys.executable).with_name(exe), "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith(version("getmeds-desktop"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{version("getmeds-desktop")}"' in pyproject
