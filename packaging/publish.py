"""Sign and publish a release to the release bucket, then promote it.

    python packaging/publish.py keygen --secret-id getmeds/release-signing-key
    python packaging/publish.py publish --bucket rivera-getmeds-releases \\
        --key-secret-id getmeds/release-signing-key dist/release/getmeds-0.2.0-linux-x86_64.tar.gz
    python packaging/publish.py promote --bucket rivera-getmeds-releases --version 0.2.0 \\
        --key-secret-id getmeds/release-signing-key

``publish`` uploads each artefact to ``releases/<version>/`` and writes
``releases/<version>/manifest.json``, signed with Ed25519 (getmeds_desktop/updates.py
describes the manifest); a platform already in that version's manifest is
replaced and the others kept, so each build host can publish its own. ``promote``
copies a version's manifest, verified again, to ``releases/latest.json``: that
is when workstations are offered it.

The signing key (PEM, PKCS#8) comes from ``--key-secret-id`` (AWS Secrets
Manager, in the pipeline), or ``--key-file``, or the ``GETMEDS_RELEASE_SIGNING_KEY``
environment variable (PEM text). A key whose public half is not shipped in
getmeds_desktop/resources/release_keys/ is refused unless ``--allow-unshipped-key``:
the app would refuse what it signs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from getmeds_desktop import updates  # noqa: E402
from getmeds_desktop.errors import GetMedsError  # noqa: E402

KEYS_DIR = ROOT / "getmeds_desktop" / "resources" / "release_keys"
KEY_ENV = "GETMEDS_RELEASE_SIGNING_KEY"
_NAME = re.compile(r"^getmeds-(?P<version>[0-9][0-9a-z.]*)-(?P<platform>[a-z]+-[a-z0-9_]+)"
                   r"(?:-setup\.exe|\.(?P<ext>dmg|tar\.gz))$")


class PublishError(Exception):
    pass


def parse_artefact_name(name: str) -> tuple[str, str, str]:
    """(version, platform, kind) from an artefact's file name."""
    m = _NAME.match(name)
    if not m:
        raise PublishError(f"{name}: not an artefact name (getmeds-<version>-<platform>"
                           ".tar.gz, .dmg or -setup.exe)")
    kind = m.group("ext") or "setup.exe"
    if m.group("platform") not in updates.PLATFORMS:
        raise PublishError(f"{name}: {m.group('platform')} is not a platform GetMeds is "
                           f"released for ({', '.join(updates.PLATFORMS)})")
    return m.group("version"), m.group("platform"), kind


def load_signing_key(*, key_file: str | None = None, secret_id: str | None = None,
                     session: Any = None, endpoint_url: str | None = None
                     ) -> updates.Ed25519PrivateKey:
    if secret_id:
        sm = (session or boto3.session.Session()).client("secretsmanager",
                                                         endpoint_url=endpoint_url)
        try:
            pem = sm.get_secret_value(SecretId=secret_id)["SecretString"]
        except ClientError as exc:
            raise PublishError(f"The signing key {secret_id} cannot be read: {exc}") from None
        return updates.load_private_key(pem.encode("ascii"))
    if key_file:
        return updates.load_private_key(Path(key_file).read_bytes())
    pem = os.environ.get(KEY_ENV)
    if pem:
        return updates.load_private_key(pem.encode("ascii"))
    raise PublishError(f"No signing key: give --key-secret-id, --key-file or {KEY_ENV}.")


def _check_shipped(key: updates.Ed25519PrivateKey,
                   trusted: dict[str, updates.Ed25519PublicKey] | None) -> None:
    trusted = updates.trusted_keys() if trusted is None else trusted
    kid = updates.key_id(key.public_key())
    if kid not in trusted:
        raise PublishError(
            f"The signing key {kid} is not among the keys this version of GetMeds ships "
            f"({', '.join(trusted) or 'none'}): workstations would refuse the release. Commit "
            f"its public key to {KEYS_DIR.relative_to(ROOT)}/ first.")


def _get(s3: Any, bucket: str, key: str) -> tuple[bytes | None, str | None]:
    """An object's bytes and ETag; (None, None) if there is none."""
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None, None
        raise
    return bytes(obj["Body"].read()), obj.get("ETag")


def _verified(data: bytes, key: updates.Ed25519PrivateKey, where: str) -> updates.Manifest:
    own = {updates.key_id(key.public_key()): key.public_key()}
    try:
        return updates.parse_manifest(data, own, url=where)
    except updates.UpdateRefused as exc:
        raise PublishError(f"The published manifest {where} does not verify; it was not "
                           f"changed: {exc}") from None


def _entry(a: updates.Artefact) -> dict[str, Any]:
    return {"platform": a.platform, "kind": a.kind, "name": a.name, "url": a.url,
            "size": a.size, "sha256": a.sha256}


ATTEMPTS = 5


def publish(s3: Any, bucket: str, files: list[Path], key: updates.Ed25519PrivateKey, *,
            prefix: str = "releases", base_url: str | None = None,
            minimum_schema: str | None = None, version: str | None = None,
            trusted: dict[str, updates.Ed25519PublicKey] | None = None,
            now: dt.datetime | None = None, out: Any = sys.stdout) -> dict[str, Any]:
    """Upload ``files`` and the signed manifest of their version; the envelope.

    Each build host publishes its own platform: the version's manifest is read,
    merged and written back only if nobody changed it meanwhile (S3 conditional
    writes), else read again. A platform already offered to the workstations
    (in latest.json) is never replaced: bump the version instead."""
    _check_shipped(key, trusted)
    if not files:
        raise PublishError("Nothing to publish: name the artefacts.")
    parsed = [(f, *parse_artefact_name(f.name)) for f in files]
    versions = {v for _, v, _, _ in parsed}
    if len(versions) != 1:
        raise PublishError(f"The artefacts are of several versions: {', '.join(sorted(versions))}")
    (file_version,) = versions
    if version and version != file_version:
        raise PublishError(f"The artefacts are version {file_version}, not {version}.")
    version = file_version
    if minimum_schema is None:
        from getmeds_desktop import db

        minimum_schema = db.head_revision()
    base = base_url or f"https://{bucket}.s3.amazonaws.com/"
    root = prefix.strip("/")
    folder = f"{root}/{version}"
    manifest_key = f"{folder}/{updates.MANIFEST_NAME}"

    latest, _ = _get(s3, bucket, f"{root}/{updates.LATEST_NAME}")
    if latest is not None:
        offered = _verified(latest, key, f"s3://{bucket}/{root}/{updates.LATEST_NAME}")
        if offered.version == version:
            again = sorted({p for _, _, p, _ in parsed} & {a.platform for a in offered.artefacts})
            if again:
                raise PublishError(
                    f"GetMeds {version} for {', '.join(again)} is already offered to the "
                    "workstations and is never replaced: raise the version in pyproject.toml.")

    new: dict[str, dict[str, Any]] = {}
    for path, _v, platform, kind in parsed:
        digest = updates.file_sha256(path)
        object_key = f"{folder}/{path.name}"
        with path.open("rb") as fh:
            s3.put_object(Bucket=bucket, Key=object_key, Body=fh,
                          ChecksumAlgorithm="SHA256",
                          Metadata={"sha256": digest}, ContentType="application/octet-stream")
        new[platform] = {"platform": platform, "kind": kind, "name": path.name,
                         "url": urllib.parse.urljoin(base, object_key),
                         "size": path.stat().st_size, "sha256": digest}
        print(f"publish: s3://{bucket}/{object_key} sha256 {digest}", file=out)

    for _attempt in range(ATTEMPTS):
        existing, etag = _get(s3, bucket, manifest_key)
        entries: dict[str, dict[str, Any]] = {}
        if existing is not None:  # another build host published its platform already
            old = _verified(existing, key, f"s3://{bucket}/{manifest_key}")
            if old.minimum_schema != minimum_schema:
                raise PublishError(f"{version} was published for schema {old.minimum_schema}, "
                                   f"this build is for {minimum_schema}.")
            entries = {a.platform: _entry(a) for a in old.artefacts}
        entries.update(new)
        published = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        signed = {"format": updates.MANIFEST_FORMAT, "product": updates.PRODUCT,
                  "version": version, "published": published, "minimum_schema": minimum_schema,
                  "artefacts": [entries[p] for p in sorted(entries)]}
        envelope = updates.sign_manifest(signed, key)
        body = json.dumps(envelope, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            s3.put_object(Bucket=bucket, Key=manifest_key, Body=body,
                          ContentType="application/json", CacheControl="no-cache", **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed",
                                                                 "ConditionalRequestConflict"):
                raise
            print("publish: another build host changed the manifest meanwhile; merging again",
                  file=out)
            continue
        print(f"publish: s3://{bucket}/{manifest_key} ({', '.join(sorted(entries))}); "
              f"promote it to offer it to the workstations", file=out)
        return envelope
    raise PublishError(f"The manifest {manifest_key} kept changing; publish again.")


def promote(s3: Any, bucket: str, version: str, key: updates.Ed25519PrivateKey, *,
            prefix: str = "releases", platforms: tuple[str, ...] = (),
            out: Any = sys.stdout) -> None:
    """Verify ``version``'s manifest and make it ``latest.json``."""
    manifest_key = f"{prefix.strip('/')}/{version}/{updates.MANIFEST_NAME}"
    data, _etag = _get(s3, bucket, manifest_key)
    if data is None:
        raise PublishError(f"{version} was never published (no s3://{bucket}/{manifest_key}).")
    manifest = _verified(data, key, f"s3://{bucket}/{manifest_key}")
    missing = sorted(set(platforms) - {a.platform for a in manifest.artefacts})
    if missing:
        raise PublishError(f"Not promoted: {version} has no build for {', '.join(missing)} yet.")
    for a in manifest.artefacts:  # every artefact is there, with its size
        head = s3.head_object(Bucket=bucket, Key=f"{prefix.strip('/')}/{version}/{a.name}")
        if head["ContentLength"] != a.size:
            raise PublishError(f"Not promoted: {a.name} in the bucket is "
                               f"{head['ContentLength']} bytes, the manifest says {a.size}.")
    s3.put_object(Bucket=bucket, Key=f"{prefix.strip('/')}/{updates.LATEST_NAME}", Body=data,
                  ContentType="application/json", CacheControl="no-cache")
    print(f"promote: {version} is now {prefix.strip('/')}/{updates.LATEST_NAME}", file=out)


def keygen(secret_id: str, *, session: Any = None, endpoint_url: str | None = None,
           keys_dir: Path = KEYS_DIR, out: Any = sys.stdout) -> Path:
    """A new signing key: the private half to Secrets Manager, the public half to
    the package data (commit it; the next build trusts it)."""
    key = updates.Ed25519PrivateKey.generate()
    sm = (session or boto3.session.Session()).client("secretsmanager",
                                                     endpoint_url=endpoint_url)
    sm.create_secret(Name=secret_id, SecretString=updates.private_key_pem(key),
                     Description="GetMeds release signing key (Ed25519, PKCS#8 PEM)")
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = keys_dir / f"{updates.key_id(key.public_key())}.pem"
    path.write_text(updates.public_key_pem(key.public_key()), encoding="ascii")
    print(f"keygen: private key in {secret_id}; public key {path} (commit it)", file=out)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="publish.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint-url", help="another S3/Secrets Manager endpoint (tests)")
    sub = p.add_subparsers(dest="command", required=True)

    def key_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--key-secret-id", help="the Secrets Manager secret with the key")
        sp.add_argument("--key-file", help="a PEM file with the key")

    kg = sub.add_parser("keygen", help="make a signing key")
    kg.add_argument("--secret-id", required=True)
    pub = sub.add_parser("publish", help="upload artefacts and their signed manifest")
    pub.add_argument("--bucket", required=True)
    pub.add_argument("--prefix", default="releases")
    pub.add_argument("--base-url", help="the bucket's address workstations download from")
    pub.add_argument("--minimum-schema", help="default: this version's schema head")
    pub.add_argument("--allow-unshipped-key", action="store_true")
    pub.add_argument("files", nargs="+", type=Path)
    key_options(pub)
    pro = sub.add_parser("promote", help="offer a published version to the workstations")
    pro.add_argument("--bucket", required=True)
    pro.add_argument("--prefix", default="releases")
    pro.add_argument("--version", required=True)
    pro.add_argument("--require-platform", action="append", default=[])
    key_options(pro)
    args = p.parse_args(argv)
    session = boto3.session.Session()
    try:
        if args.command == "keygen":
            keygen(args.secret_id, session=session, endpoint_url=args.endpoint_url)
            return 0
        key = load_signing_key(key_file=args.key_file, secret_id=args.key_secret_id,
                               session=session, endpoint_url=args.endpoint_url)
        s3 = session.client("s3", endpoint_url=args.endpoint_url)
        if args.command == "publish":
            trusted = ({updates.key_id(key.public_key()): key.public_key()}
                       if args.allow_unshipped_key else None)
            publish(s3, args.bucket, args.files, key, prefix=args.prefix,
                    base_url=args.base_url, minimum_schema=args.minimum_schema,
                    trusted=trusted)
        else:
            promote(s3, args.bucket, args.version, key, prefix=args.prefix,
                    platforms=tuple(args.require_platform))
    except (PublishError, GetMedsError) as exc:
        print(f"publish.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
