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
    for step in ("ReportLab accelerator present", "screening data loaded", "migrated to",
                 "signed in as admin", "opened inventory", "opened dispensing", "opened admin",
                 "wrote the inventory report", "keyring:", "update verifier: Ed25519 works",
                 "OK in"):
        assert step in lines, step


def test_a_broken_build_fails_the_smoke_test_with_the_reason(qapp, monkeypatch, capsys):
    """In-process, with report writing broken: exit code 1 and the reason."""
    import getmeds_desktop.reports as reports
    from getmeds_desktop.ui.smoke import run_smoke_test

    def broken(*_a, **_k):
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


def test_a_missing_accelerator_fails_the_smoke_test(qapp, monkeypatch, capsys):
    """The bundle once shipped without ReportLab's accelerator while the build
    passed (the spec named ``rl_accel``; the module is ``_rl_accel``)."""
    from getmeds_desktop.ui.smoke import run_smoke_test

    monkeypatch.setitem(sys.modules, "_rl_accel", None)  # as in a bundle without it
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert run_smoke_test() == 1
    assert "_rl_accel) is missing" in capsys.readouterr().err


def test_the_spec_names_the_accelerator_module():
    spec = (ROOT / "packaging" / "getmeds.spec").read_text()
    assert '"_rl_accel"' in spec
    import importlib.util

    assert importlib.util.find_spec("_rl_accel") is not None


def test_build_fails_on_pyinstaller_error_lines():
    import importlib.util

    spec = importlib.util.spec_from_file_location("getmeds_build", ROOT / "packaging" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    out = ("123 INFO: PyInstaller: 6.11.1\n"
           "4567 ERROR: Hidden import 'rl_accel' not found\n"
           "4600 WARNING: Library not found: could not resolve 'libfoo.so'\n")
    assert build.pyinstaller_errors(out) == ["4567 ERROR: Hidden import 'rl_accel' not found"]
    assert build.pyinstaller_errors("12 INFO: fine\n") == []
