"""The scripts wait for another apt-get or dpkg instead of failing at once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fake_apt(tmp_path: Path, busy_times: int, other_error: bool = False) -> Path:
    """An apt-get that says the lock is held ``busy_times`` times, then works
    (or fails for another reason)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    count = tmp_path / "count"
    count.write_text("0")
    fail = ("echo 'E: Unable to locate package nosuch' >&2; exit 100" if other_error
            else "echo done; exit 0")
    (bin_dir / "apt-get").write_text(f"""#!/bin/bash
n=$(cat {count}); echo $((n+1)) > {count}
if [ "$n" -lt {busy_times} ]; then
  echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
  exit 100
fi
{fail}
""")
    (bin_dir / "apt-get").chmod(0o755)
    (bin_dir / "sleep").write_text("#!/bin/bash\nexit 0\n")  # no real waiting in the test
    (bin_dir / "sleep").chmod(0o755)
    return bin_dir


def _run(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", f"source '{ROOT}/scripts/_venv.sh'; apt_wait install -y nothing"],
        env=env, capture_output=True, text=True, timeout=60)


def test_waits_while_another_apt_get_holds_the_lock(tmp_path):
    r = _run(_fake_apt(tmp_path, busy_times=3))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("Another apt-get or dpkg is running; waiting") == 3


def test_another_error_is_shown_at_once(tmp_path):
    r = _run(_fake_apt(tmp_path, busy_times=0, other_error=True))
    assert r.returncode == 100
    assert "Unable to locate package nosuch" in r.stderr and "waiting" not in r.stderr
