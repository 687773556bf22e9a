"""Build the one-folder bundle IT rolls out, then prove it works.

    python packaging/build.py [--dist DIR] [--skip-smoke]

Runs PyInstaller with packaging/getmeds.spec, then runs the frozen
``getmeds --smoke-test`` and ``getmeds-admin --version`` with a clean home
folder; the build fails on a non-zero exit or on any line on standard error
that is not known to be harmless. Prints the bundle's size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "getmeds.spec"
EXE = ".exe" if sys.platform == "win32" else ""
# stderr lines a healthy run may print (none today: the smoke test routes Qt's
# messages to the log); anything else fails the build
HARMLESS_STDERR: tuple[str, ...] = ()


def _size(folder: Path) -> int:
    """Bytes on disk (links counted once)."""
    return sum(p.lstat().st_size for p in folder.rglob("*")
               if p.is_file() and not p.is_symlink())


def pyinstaller_errors(output: str) -> list[str]:
    """PyInstaller's ERROR lines (e.g. "ERROR: Hidden import '...' not found"): it
    reports them and still builds, so the build would pass without the module."""
    return [line.strip() for line in output.splitlines() if " ERROR: " in f" {line}"]


def build(dist: Path, work: Path) -> Path:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean",
                          "--log-level", "WARN", "--distpath", str(dist), "--workpath",
                          str(work), str(SPEC)], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    for line in (run.stdout + run.stderr).strip().splitlines():
        print(f"  pyinstaller: {line}", flush=True)
    errors = pyinstaller_errors(run.stdout + run.stderr)
    if run.returncode != 0 or errors:
        raise SystemExit(f"build: PyInstaller failed (exit code {run.returncode}, "
                         f"{len(errors)} ERROR line(s)): " + "; ".join(errors[:5]))
    bundle = dist / "getmeds"
    print(f"build: {bundle} in {time.perf_counter() - started:.0f} s, "
          f"{_size(bundle) / 1024 / 1024:.0f} MB", flush=True)
    return bundle


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GETMEDS_", "PYTHON", "VIRTUAL_ENV", "QT_"))}
    env.update(HOME=str(home), USERPROFILE=str(home), APPDATA=str(home / "AppData"),
               LOCALAPPDATA=str(home / "AppData" / "Local"),
               XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_STATE_HOME=str(home / ".local/state"), XDG_CACHE_HOME=str(home / ".cache"))
    return env


def smoke(bundle: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="getmeds-build-home-"))
    try:
        env = _clean_env(home)
        checks = [
            [str(bundle / f"getmeds{EXE}"), "--version"],
            [str(bundle / f"getmeds-admin{EXE}"), "--version"],
            [str(bundle / f"getmeds{EXE}"), "--smoke-test"],
        ]
        for cmd in checks:
            started = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                                 check=False)
            name = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))
            for line in out.stdout.strip().splitlines():
                print(f"  {line}")
            bad = [line for line in out.stderr.splitlines()
                   if line.strip() and not line.startswith(HARMLESS_STDERR or ("\0",))]
            if out.returncode != 0 or bad:
                for line in out.stderr.strip().splitlines():
                    print(f"  stderr: {line}", file=sys.stderr)
                raise SystemExit(f"build: '{name}' failed (exit code {out.returncode}"
                                 + (f", {len(bad)} unexpected line(s) on stderr" if bad else "")
                                 + ")")
            print(f"build: '{name}' passed in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="build.py")
    p.add_argument("--dist", default=str(ROOT / "dist"))
    p.add_argument("--work", default=str(ROOT / "build"))
    p.add_argument("--skip-smoke", action="store_true")
    args = p.parse_args(argv)
    bundle = build(Path(args.dist), Path(args.work))
    if not args.skip_smoke:
        smoke(bundle)
    print(f"build: done: {bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
