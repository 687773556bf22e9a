"""Turn the smoke-tested bundle (packaging/build.py) into what IT downloads.

    python packaging/artefacts.py --bundle dist/getmeds --out dist/release

On Linux: ``getmeds-<version>-linux-x86_64.tar.gz`` (the folder ``getmeds/``).
On Windows: ``getmeds-<version>-windows-x86_64-setup.exe``, made by Inno Setup's
``ISCC.exe`` from packaging/getmeds.iss. On macOS: ``getmeds-<version>-macos-arm64.dmg``
holding ``GetMeds.app`` (``hdiutil``). Every run also writes ``SHA256SUMS``
(the format of ``sha256sum -c``). The version is the package's (pyproject.toml),
and the bundle must say the same (``getmeds-admin --version``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ISS = HERE / "getmeds.iss"


def package_version() -> str:
    """The one version number (pyproject.toml)."""
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def platform_tag() -> str:
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{arch}"


def artefact_name(version: str, tag: str) -> str:
    if tag.startswith("windows-"):
        return f"getmeds-{version}-{tag}-setup.exe"
    if tag.startswith("macos-"):
        return f"getmeds-{version}-{tag}.dmg"
    return f"getmeds-{version}-{tag}.tar.gz"


def bundle_version(bundle: Path) -> str:
    exe = ".exe" if sys.platform == "win32" else ""
    admin = bundle / f"getmeds-admin{exe}"
    if not admin.exists():  # the macOS .app keeps its programs in Contents/MacOS
        admin = bundle / "Contents" / "MacOS" / "getmeds-admin"
    out = subprocess.run([str(admin), "--version"], capture_output=True, text=True,
                         check=True, timeout=300)
    return out.stdout.strip().rsplit(" ", 1)[-1]


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """The same bundle gives the same tarball (owner and times reset)."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "1577836800"))
    return info


def make_tarball(bundle: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with tmp.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                          compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(bundle, arcname="getmeds", filter=_reset, recursive=False)
        for path in sorted(bundle.rglob("*")):
            tar.add(path, arcname=f"getmeds/{path.relative_to(bundle).as_posix()}",
                    filter=_reset, recursive=False)
    tmp.replace(target)
    return target


def make_windows_installer(bundle: Path, target: Path, version: str) -> Path:
    iscc = shutil.which("ISCC") or shutil.which("iscc") or os.environ.get("ISCC")
    if not iscc:
        raise SystemExit("artefacts: Inno Setup's ISCC.exe is not on PATH "
                         "(choco install innosetup)")
    args = [iscc, "/Qp", f"/DAppVersion={version}", f"/DSourceDir={bundle}",
            f"/DOutputDir={target.parent}", f"/DOutputBase={target.stem}"]
    sign = os.environ.get("ISCC_SIGNTOOL")  # "name=command $f": installer and uninstaller signed
    if sign:
        args += [f"/S{sign}", f"/DSignTool={sign.split('=', 1)[0]}"]
    subprocess.run([*args, str(ISS)], check=True)
    return target


def make_dmg(app: Path, target: Path) -> Path:
    target.unlink(missing_ok=True)
    subprocess.run(["hdiutil", "create", "-volname", "GetMeds", "-srcfolder", str(app),
                    "-fs", "HFS+", "-format", "UDZO", "-ov", str(target)], check=True)
    return target


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(files: list[Path], out: Path) -> Path:
    """SHA256SUMS, checked with ``sha256sum -c SHA256SUMS`` (or Get-FileHash)."""
    lines = [f"{sha256_of(f)}  {f.name}\n" for f in sorted(files)]
    sums = out / "SHA256SUMS"
    sums.write_text("".join(lines), encoding="ascii")
    return sums


def make(bundle: Path, out: Path, *, tag: str | None = None, version: str | None = None,
         check_bundle: bool = True) -> Path:
    """Make this platform's artefact from ``bundle`` in ``out``; its path."""
    version = version or package_version()
    tag = tag or platform_tag()
    if check_bundle:
        frozen = bundle_version(bundle)
        if frozen != version:
            raise SystemExit(f"artefacts: the bundle says {frozen}, the package {version}: "
                             "rebuild it")
    out.mkdir(parents=True, exist_ok=True)
    target = out / artefact_name(version, tag)
    if tag.startswith("windows-"):
        make_windows_installer(bundle, target, version)
    elif tag.startswith("macos-"):
        make_dmg(bundle, target)
    else:
        make_tarball(bundle, target)
    write_checksums([p for p in out.iterdir() if p.name != "SHA256SUMS" and p.is_file()], out)
    print(f"artefacts: {target} ({target.stat().st_size / 1024 / 1024:.0f} MB, "
          f"sha256 {sha256_of(target)})")
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="artefacts.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default=str(ROOT / "dist" / "getmeds"),
                   help="the folder build.py made (on macOS: dist/GetMeds.app)")
    p.add_argument("--out", default=str(ROOT / "dist" / "release"))
    p.add_argument("--platform", help=f"the platform tag (default: {platform_tag()})")
    args = p.parse_args(argv)
    make(Path(args.bundle), Path(args.out), tag=args.platform)
    return 0


if __name__ == "__main__":
    sys.exit(main())
