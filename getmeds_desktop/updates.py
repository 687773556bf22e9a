"""New versions of GetMeds: the signed release manifest and the update check.

The release pipeline (packaging/publish.py) publishes every release to the
release bucket as::

    releases/<version>/<artefact>           the installer, .dmg or tarball
    releases/<version>/manifest.json        the signed manifest of that version
    releases/latest.json                    the same manifest, for the newest release

A manifest is an envelope around the signed part::

    {"signed": {"format": 1, "product": "getmeds-desktop", "version": "0.2.0",
                "published": "2026-12-01T15:00:00Z", "minimum_schema": "0014",
                "artefacts": [{"platform": "linux-x86_64", "kind": "tar.gz",
                               "name": "getmeds-0.2.0-linux-x86_64.tar.gz",
                               "url": "https://.../releases/0.2.0/getmeds-0.2.0-linux-x86_64.tar.gz",
                               "size": 138412032, "sha256": "<hex>",
                               "signature": "<base64 Ed25519 over the artefact statement>"}]},
     "signatures": [{"key_id": "<16 hex>", "signature": "<base64 Ed25519 over canonical(signed)>"}]}

The manifest's signature covers every field of ``signed`` (canonical JSON: sorted
keys, no spaces, UTF-8); each artefact also carries its own signature over
``artefact_statement()``, so an artefact taken out of one manifest cannot be
passed off as another version or platform. The app trusts only the public keys
shipped in its package data (``resources/release_keys/*.pem``); a manifest or an
artefact that does not verify is refused and nothing is kept.

The check is set in the site file (IT can turn it off or pin a version)::

    [updates]
    manifest_url = "https://rivera-getmeds-releases.s3.amazonaws.com/releases/latest.json"
    enabled = true           # false: never check
    check_at_start = true    # check once when the main window opens
    pin = "0.2.0"            # offer exactly this version, never another

No Qt here: the GUI runs :func:`check_for_update` in a background task.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import platform as _platform
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import GetMedsError

log = logging.getLogger(__name__)

PRODUCT = "getmeds-desktop"
MANIFEST_FORMAT = 1
LATEST_NAME = "latest.json"
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 1024 * 1024
TIMEOUT_S = 20.0
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){1,3}([a-z]+[0-9]*)?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
KINDS = ("setup.exe", "dmg", "tar.gz")
# the platforms a release is built for (packaging/publish.py refuses others)
PLATFORMS = ("windows-x86_64", "macos-arm64", "macos-x86_64", "linux-x86_64", "linux-arm64")


class UpdateRefused(GetMedsError):
    """A manifest or an artefact failed its signature or checksum: nothing is kept."""


class UpdateUnavailable(GetMedsError):
    """The release bucket could not be reached or read."""


# ------------------------------------------------------------------ signing


def canonical(obj: Any) -> bytes:
    """The bytes a signature covers: JSON with sorted keys and no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key: the start of the SHA-256 of its raw bytes."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()[:16]


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise UpdateRefused("A release key must be an Ed25519 public key.")
    return key


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """The release signing key (PEM, PKCS#8, unencrypted: it lives in Secrets Manager)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise GetMedsError(f"The release signing key cannot be read: {exc}.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise GetMedsError("The release signing key must be an Ed25519 private key.")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def artefact_statement(version: str, platform: str, kind: str, sha256: str) -> bytes:
    """What an artefact's own signature covers."""
    return f"{PRODUCT} {version} {platform} {kind} sha256:{sha256}".encode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_manifest(signed: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The envelope for ``signed`` with its artefacts' signatures filled in."""
    body = json.loads(json.dumps(signed))  # a plain copy
    for a in body["artefacts"]:
        a["signature"] = _b64(key.sign(artefact_statement(
            body["version"], a["platform"], a["kind"], a["sha256"])))
    check_signed_part(body)
    return {"signed": body,
            "signatures": [{"key_id": key_id(key.public_key()),
                            "signature": _b64(key.sign(canonical(body)))}]}


def trusted_keys() -> dict[str, Ed25519PublicKey]:
    """The release keys shipped with this build (package data)."""
    keys: dict[str, Ed25519PublicKey] = {}
    folder = resources.files("getmeds_desktop") / "resources" / "release_keys"
    if not folder.is_dir():
        return keys
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".pem"):
            key = load_public_key(entry.read_bytes())
            keys[key_id(key)] = key
    return keys


def self_check() -> str:
    """A signature round trip with a throwaway key (the frozen build's smoke
    test: the cryptography library works), and the release keys shipped."""
    key = Ed25519PrivateKey.generate()
    signed = {"format": MANIFEST_FORMAT, "product": PRODUCT, "version": "0.0.1",
              "published": "2020-01-01T00:00:00Z", "minimum_schema": "0001",
              "artefacts": [{"platform": "linux-x86_64", "kind": "tar.gz",
                             "name": "getmeds-0.0.1-linux-x86_64.tar.gz", "url": "x",
                             "size": 1, "sha256": "0" * 64}]}
    envelope = sign_manifest(signed, key)
    parse_manifest(canonical(envelope), {key_id(key.public_key()): key.public_key()})
    envelope["signed"]["version"] = "0.0.2"
    try:
        parse_manifest(canonical(envelope), {key_id(key.public_key()): key.public_key()})
    except UpdateRefused:
        pass
    else:
        raise UpdateRefused("The update check accepted a changed manifest.")
    shipped = trusted_keys()
    return (f"update verifier: Ed25519 works; {len(shipped)} release key(s) shipped"
            + (f" ({', '.join(shipped)})" if shipped else " (update checks cannot verify)"))


# ----------------------------------------------------------------- manifests


@dataclasses.dataclass(frozen=True)
class Artefact:
    platform: str
    kind: str
    name: str
    url: str
    size: int
    sha256: str
    signature: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    version: str
    published: str
    minimum_schema: str
    artefacts: tuple[Artefact, ...]
    key_id: str

    def for_platform(self, platform: str) -> Artefact | None:
        return next((a for a in self.artefacts if a.platform == platform), None)


TAMPERED = ("The update manifest at {url} was refused: {why}. It was changed after it was "
            "signed, or it was not signed with GetMeds' release key. Nothing was downloaded; "
            "tell your IT department.")


def check_signed_part(body: Any) -> None:
    """The signed part's shape (a signature over nonsense is still nonsense)."""
    def bad(why: str) -> ValueError:
        return ValueError(why)

    if not isinstance(body, dict):
        raise bad("the manifest is not a JSON object")
    if body.get("format") != MANIFEST_FORMAT:
        raise bad(f"manifest format {body.get('format')!r} is not {MANIFEST_FORMAT}")
    if body.get("product") != PRODUCT:
        raise bad(f"it is for {body.get('product')!r}, not {PRODUCT}")
    for name in ("version", "published", "minimum_schema"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise bad(f"{name} is missing")
    if not _VERSION.match(body["version"]):
        raise bad(f"{body['version']!r} is not a version number")
    arts = body.get("artefacts")
    if not isinstance(arts, list) or not arts:
        raise bad("it lists no artefacts")
    seen: set[str] = set()
    for a in arts:
        if not isinstance(a, dict):
            raise bad("an artefact is not a JSON object")
        for name in ("platform", "kind", "name", "url", "sha256"):
            if not isinstance(a.get(name), str) or not a[name]:
                raise bad(f"an artefact has no {name}")
        if a["platform"] in seen:
            raise bad(f"{a['platform']} is listed twice")
        seen.add(a["platform"])
        if a["kind"] not in KINDS:
            raise bad(f"artefact kind {a['kind']!r} is unknown")
        if not _HEX64.match(a["sha256"]):
            raise bad(f"the SHA-256 of {a['name']} is not 64 hex digits")
        if not isinstance(a.get("size"), int) or a["size"] <= 0:
            raise bad(f"the size of {a['name']} is missing")
        if "/" in a["name"] or "\\" in a["name"] or a["name"].startswith("."):
            raise bad(f"artefact name {a['name']!r} is not a plain file name")


def parse_manifest(data: bytes, keys: Mapping[str, Ed25519PublicKey], *,
                   url: str = "the release bucket") -> Manifest:
    """Verify and read a manifest; :class:`UpdateRefused` unless it is intact
    and signed by one of ``keys``."""
    def refuse(why: str) -> UpdateRefused:
        return UpdateRefused(TAMPERED.format(url=url, why=why))

    if not keys:
        raise UpdateRefused("This build of GetMeds carries no release key, so it cannot "
                            "verify updates; the update check is not set up.")
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise refuse("it is not valid JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signed"), dict):
        raise refuse("it has no signed part")
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise refuse("it carries no signature")
    body = envelope["signed"]
    message = canonical(body)
    verified_by: str | None = None
    for sig in sigs:
        if not isinstance(sig, dict):
            continue
        key = keys.get(str(sig.get("key_id")))
        if key is None:
            continue
        try:
            key.verify(base64.b64decode(str(sig.get("signature")), validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            raise refuse("its signature does not match its content") from None
        verified_by = key_id(key)
        break
    if verified_by is None:
        raise refuse("it is not signed with a release key this build trusts")
    try:
        check_signed_part(body)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    key = keys[verified_by]
    artefacts = []
    for a in body["artefacts"]:
        try:
            key.verify(base64.b64decode(str(a.get("signature")), validate=True),
                       artefact_statement(body["version"], a["platform"], a["kind"],
                                          a["sha256"]))
        except (InvalidSignature, binascii.Error, ValueError):
            raise refuse(f"the signature of {a['name']} does not match") from None
        artefacts.append(Artefact(platform=a["platform"], kind=a["kind"], name=a["name"],
                                  url=urllib.parse.urljoin(url, a["url"]), size=a["size"],
                                  sha256=a["sha256"], signature=a["signature"]))
    return Manifest(version=body["version"], published=body["published"],
                    minimum_schema=body["minimum_schema"], artefacts=tuple(artefacts),
                    key_id=verified_by)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_artefact(manifest: Manifest, artefact: Artefact, path: Path) -> None:
    """The downloaded file is the one the manifest names, byte for byte."""
    size = path.stat().st_size
    digest = file_sha256(path)
    if size != artefact.size or digest != artefact.sha256:
        raise UpdateRefused(
            f"The download of GetMeds {manifest.version} ({artefact.name}) was refused: its "
            f"SHA-256 is {digest[:12]}… ({size:,} bytes) but the signed manifest says "
            f"{artefact.sha256[:12]}… ({artefact.size:,} bytes). The file was changed or "
            "damaged on the way and has been deleted; tell your IT department.")


# ------------------------------------------------------------------ versions


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """Order of versions: 0.10.0 after 0.9.1; 1.0.0rc1 before 1.0.0."""
    m = re.match(r"^([0-9]+(?:\.[0-9]+)*)(.*)$", version)
    if not m:
        return ((), 0, version)
    numbers = tuple(int(p) for p in m.group(1).split("."))
    numbers = numbers + (0,) * (4 - len(numbers))
    suffix = m.group(2)
    return (numbers, 0 if suffix else 1, suffix)


def platform_tag(system: str | None = None, machine: str | None = None) -> str:
    """This computer's platform in the manifest's terms."""
    system = system or sys.platform
    machine = (machine or _platform.machine()).lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    if system.startswith("win"):
        return f"windows-{arch}"
    if system == "darwin":
        return f"macos-{arch}"
    return f"linux-{arch}"


# ------------------------------------------------------------------ settings


@dataclasses.dataclass(frozen=True)
class UpdateSettings:
    manifest_url: str | None = None
    enabled: bool = True
    check_at_start: bool = True
    pin: str | None = None

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.manifest_url)

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> UpdateSettings:
        """From the ``[updates]`` table (already checked by config.load_config)."""
        return cls(manifest_url=values.get("manifest_url") or None,
                   enabled=bool(values.get("enabled", True)),
                   check_at_start=bool(values.get("check_at_start", True)),
                   pin=values.get("pin") or None)

    def url_to_check(self) -> str:
        assert self.manifest_url
        if self.pin:
            return urllib.parse.urljoin(self.manifest_url, f"{self.pin}/{MANIFEST_NAME}")
        return self.manifest_url


UPDATE_KEYS = {"manifest_url": str, "enabled": bool, "check_at_start": bool, "pin": str}


def check_settings(values: Mapping[str, Any], where: str) -> None:
    """Raise ValueError naming the wrong setting of an ``[updates]`` table."""
    for name, value in values.items():
        kind = UPDATE_KEYS.get(name)
        if kind is None:
            raise ValueError(f"{where}: unknown setting updates.{name} (known: "
                             f"{', '.join(UPDATE_KEYS)})")
        if not isinstance(value, kind):
            raise ValueError(f"{where}: updates.{name} must be "
                             f"{'true or false' if kind is bool else 'text'}")
    url = values.get("manifest_url")
    if url:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("https", "s3") and not _loopback_http(url):
            raise ValueError(f"{where}: updates.manifest_url must be an https:// or s3:// "
                             "address")
    pin = values.get("pin")
    if pin and not _VERSION.match(pin):
        raise ValueError(f"{where}: updates.pin {pin!r} is not a version number such as 0.2.0")


# ------------------------------------------------------------------- fetching


def _loopback_http(url: str) -> bool:
    """http:// is accepted only to this computer (a local mirror, the tests)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Opener = Callable[[str], BinaryIO]


def open_url(url: str) -> BinaryIO:
    """A readable stream of ``url`` (https://, s3://bucket/key, or http:// to loopback)."""
    parts = urllib.parse.urlsplit(url)
    try:
        if parts.scheme == "s3":
            import boto3

            body = boto3.client("s3").get_object(Bucket=parts.netloc,
                                                 Key=parts.path.lstrip("/"))["Body"]
            return body  # type: ignore[no-any-return]
        if parts.scheme != "https" and not _loopback_http(url):
            raise UpdateUnavailable(f"Updates are fetched over https only, not from {url}.")
        req = urllib.request.Request(url, headers={"User-Agent": f"{PRODUCT} update check"})
        return urllib.request.urlopen(req, timeout=TIMEOUT_S)  # type: ignore[no-any-return]
    except UpdateUnavailable:
        raise
    except urllib.error.HTTPError as exc:
        raise UpdateUnavailable(f"The release bucket answered {exc.code} for {url}.") from None
    except Exception as exc:  # network, TLS, credentials: one message
        raise UpdateUnavailable(f"The release bucket could not be reached ({url}): "
                                f"{exc}.") from None


def _read_limited(stream: BinaryIO, limit: int, url: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UpdateRefused(f"The update manifest at {url} is larger than any manifest "
                            "GetMeds writes; it was refused.")
    return bytes(data)


def download(url: str, target: Path, *, limit: int, opener: Opener = open_url,
             cancelled: Callable[[], bool] | None = None) -> None:
    """Stream ``url`` to ``target`` (never more than ``limit`` bytes); stops
    between two chunks when ``cancelled()`` says so (the app is closing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    written = 0
    try:
        stream = opener(url)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(1 << 20):
                    if cancelled is not None and cancelled():
                        raise UpdateUnavailable("The download of the new version was stopped; "
                                                "it starts again at the next check.")
                    written += len(chunk)
                    if written > limit:
                        raise UpdateRefused(
                            f"The download {url} is larger than the signed manifest says; "
                            "it was refused and deleted.")
                    out.write(chunk)
        finally:
            stream.close()
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------- check


@dataclasses.dataclass(frozen=True)
class UpdateStatus:
    """What the update check found; ``message`` is for the user."""

    state: str  # off | current | ready | refused | unavailable
    message: str
    version: str | None = None
    path: Path | None = None
    needs_schema: str | None = None


def _forget_other_downloads(folder: Path, *, keep: str) -> None:
    """Earlier versions' downloads (a bundle is over 100 MB): only the one ready stays."""
    import shutil

    for entry in folder.iterdir():
        if entry.is_dir() and entry.name != keep and _VERSION.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def _schema_number(revision: str | None) -> int | None:
    return int(revision) if revision and revision.isdigit() else None


def check_for_update(settings: UpdateSettings, *, current_version: str, download_dir: Path,
                     database_schema: str | None = None, platform: str | None = None,
                     keys: Mapping[str, Ed25519PublicKey] | None = None,
                     opener: Opener = open_url,
                     cancelled: Callable[[], bool] | None = None) -> UpdateStatus:
    """Fetch the manifest, verify it, download and verify this platform's
    artefact into ``download_dir``; say whether a new version is ready."""
    if not settings.enabled:
        return UpdateStatus("off", "Update checks are turned off by your IT department.")
    if not settings.manifest_url:
        return UpdateStatus("off", "Update checks are not set up (no updates.manifest_url).")
    keys = trusted_keys() if keys is None else keys
    platform = platform or platform_tag()
    url = settings.url_to_check()
    try:
        stream = opener(url)
        try:
            data = _read_limited(stream, MAX_MANIFEST_BYTES, url)
        finally:
            stream.close()
        manifest = parse_manifest(data, keys, url=url)
        if settings.pin and manifest.version != settings.pin:
            raise UpdateRefused(TAMPERED.format(
                url=url, why=f"it is for version {manifest.version}, not the pinned "
                             f"{settings.pin}"))
        if manifest.version == current_version:
            return UpdateStatus("current", f"GetMeds {current_version} is the current "
                                + ("pinned " if settings.pin else "") + "version.",
                                version=manifest.version)
        if not settings.pin and version_key(manifest.version) < version_key(current_version):
            return UpdateStatus("current", f"GetMeds {current_version} is newer than the "
                                f"published release ({manifest.version}).",
                                version=manifest.version)
        artefact = manifest.for_platform(platform)
        if artefact is None:
            return UpdateStatus("current", f"GetMeds {manifest.version} has no build for "
                                f"{platform} yet.", version=manifest.version)
        target = download_dir / manifest.version / artefact.name
        if not (target.is_file() and target.stat().st_size == artefact.size
                and file_sha256(target) == artefact.sha256):
            download(artefact.url, target, limit=artefact.size, opener=opener,
                     cancelled=cancelled)
            try:
                verify_artefact(manifest, artefact, target)
            except UpdateRefused:
                target.unlink(missing_ok=True)
                raise
    except (UpdateRefused, UpdateUnavailable) as exc:
        refused = isinstance(exc, UpdateRefused)
        log.warning("update check: %s", exc)
        return UpdateStatus("refused" if refused else "unavailable", str(exc))
    except OSError as exc:  # the download folder (full disk, permissions)
        log.warning("update check: %s", exc)
        return UpdateStatus("unavailable", f"The new version could not be saved in "
                            f"{download_dir}: {exc.strerror or exc}.")
    _forget_other_downloads(download_dir, keep=manifest.version)
    message = (f"GetMeds {manifest.version} is ready to install (verified): {target}")
    needs: str | None = None
    have, want = _schema_number(database_schema), _schema_number(manifest.minimum_schema)
    if have is not None and want is not None and have < want:
        needs = manifest.minimum_schema
        message += (f". It needs database schema {manifest.minimum_schema} (this database is "
                    f"at {database_schema}): IT runs 'getmeds-admin db upgrade' first.")
    log.info("update check: %s", message)
    return UpdateStatus("ready", message, version=manifest.version, path=target,
                        needs_schema=needs)
