"""Signed releases end to end: a Linux tarball is made, signed with a key made
for the test, published to a moto S3 bucket (served over HTTP by moto's
server, as the real bucket is over HTTPS), promoted, and found, verified and
offered by the app's update check; a tampered manifest or artefact, a foreign
key, a pinned version and a check that is turned off behave as IT expects."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from getmeds_desktop import updates
from getmeds_desktop.updates import UpdateSettings, check_for_update

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "rivera-getmeds-releases"
LINUX = "linux-x86_64"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"getmeds_{name}",
                                                  ROOT / "packaging" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


publish_py = _load("publish")
artefacts_py = _load("artefacts")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


@pytest.fixture
def release(server, monkeypatch, tmp_path) -> SimpleNamespace:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", server)  # s3:// manifest URLs go to moto too
    s3 = boto3.client("s3", endpoint_url=server)
    # a fresh bucket per test (the server lives for the module)
    bucket = f"{BUCKET}-{tmp_path.name.replace('_', '-').lower()[-20:]}"
    s3.create_bucket(Bucket=bucket)
    # as cloud/pipeline.yaml's release bucket policy: workstations read releases/
    # without credentials (there, only from the pharmacy's addresses)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Sid": "WorkstationsReadReleases", "Effect": "Allow", "Principal": "*",
            "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/releases/*"}]}))
    key = Ed25519PrivateKey.generate()  # made at test time: no key in the repository
    trusted = {updates.key_id(key.public_key()): key.public_key()}
    base = f"{server}/{bucket}/"
    return SimpleNamespace(s3=s3, bucket=bucket, key=key, trusted=trusted, base=base,
                           latest=f"{base}releases/latest.json", tmp=tmp_path,
                           server=server)


def _bundle(tmp: Path, payload: bytes = b"frozen program") -> Path:
    bundle = tmp / "dist" / "getmeds"
    (bundle / "_internal").mkdir(parents=True, exist_ok=True)
    (bundle / "getmeds").write_bytes(b"#!/bin/sh\n" + payload)
    (bundle / "getmeds-admin").write_bytes(b"#!/bin/sh\nadmin")
    (bundle / "_internal" / "libgetmeds.so").write_bytes(payload * 100)
    return bundle


def _release(r: SimpleNamespace, version: str = "0.2.0", tag: str = LINUX, **kw) -> Path:
    out = r.tmp / f"release-{version}-{tag}"
    if tag == LINUX:
        path = artefacts_py.make(_bundle(out, version.encode()), out, tag=tag,
                                 version=version, check_bundle=False)
    else:  # Inno Setup and hdiutil do not run here: a stand-in file of the right name
        out.mkdir(parents=True, exist_ok=True)
        path = out / artefacts_py.artefact_name(version, tag)
        path.write_bytes(f"installer {version} {tag}".encode() * 50)
    publish_py.publish(r.s3, r.bucket, [path], r.key, base_url=r.base, trusted=r.trusted,
                       minimum_schema=kw.get("minimum_schema", "0014"), out=io.StringIO())
    return path


def _check(r: SimpleNamespace, *, current: str = "0.1.0", **settings) -> updates.UpdateStatus:
    settings.setdefault("manifest_url", r.latest)
    return check_for_update(UpdateSettings(**settings), current_version=current,
                            download_dir=r.tmp / "downloads", platform=LINUX, keys=r.trusted)


def _manifest(r: SimpleNamespace, key: str = "releases/latest.json") -> dict:
    return json.loads(r.s3.get_object(Bucket=r.bucket, Key=key)["Body"].read())


def _put_manifest(r: SimpleNamespace, envelope: dict, key: str = "releases/latest.json"):
    r.s3.put_object(Bucket=r.bucket, Key=key, Body=json.dumps(envelope).encode())


# ------------------------------------------------------------------ artefacts


def test_the_linux_tarball_holds_the_bundle_and_its_checksum(tmp_path):
    out = tmp_path / "release"
    path = artefacts_py.make(_bundle(tmp_path), out, tag=LINUX, version="0.2.0",
                             check_bundle=False)
    assert path.name == "getmeds-0.2.0-linux-x86_64.tar.gz"
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert {"getmeds", "getmeds/getmeds", "getmeds/_internal/libgetmeds.so"} <= set(names)
        assert all(m.uid == 0 and m.uname == "" for m in tar.getmembers())
    sums = (out / "SHA256SUMS").read_text()
    assert sums == f"{updates.file_sha256(path)}  {path.name}\n"
    # the same bundle makes the same tarball (nothing of the build machine in it)
    again = artefacts_py.make(_bundle(tmp_path / "again"), tmp_path / "again-out", tag=LINUX,
                              version="0.2.0", check_bundle=False)
    assert again.read_bytes() == path.read_bytes()


def test_artefact_names_say_version_platform_and_kind():
    assert artefacts_py.artefact_name("1.2.0", "windows-x86_64") == \
        "getmeds-1.2.0-windows-x86_64-setup.exe"
    assert artefacts_py.artefact_name("1.2.0", "macos-arm64") == "getmeds-1.2.0-macos-arm64.dmg"
    for name, expect in [("getmeds-1.2.0-windows-x86_64-setup.exe",
                          ("1.2.0", "windows-x86_64", "setup.exe")),
                         ("getmeds-1.2.0-macos-arm64.dmg", ("1.2.0", "macos-arm64", "dmg")),
                         ("getmeds-1.2.0-linux-x86_64.tar.gz",
                          ("1.2.0", "linux-x86_64", "tar.gz"))]:
        assert publish_py.parse_artefact_name(name) == expect
    with pytest.raises(publish_py.PublishError, match="not an artefact name"):
        publish_py.parse_artefact_name("getmeds.zip")
    with pytest.raises(publish_py.PublishError, match="not a platform GetMeds is released"):
        publish_py.parse_artefact_name("getmeds-1.2.0-solaris-sparc.tar.gz")


def test_the_version_is_the_packages():
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as fh:
        assert artefacts_py.package_version() == tomllib.load(fh)["project"]["version"]


# ------------------------------------------------------------- round trip


def test_a_published_release_is_found_verified_and_offered(release):
    r = release
    path = _release(r)
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, platforms=(LINUX,), out=io.StringIO())
    envelope = _manifest(r)
    assert envelope == _manifest(r, "releases/0.2.0/manifest.json")
    signed = envelope["signed"]
    (art,) = signed["artefacts"]
    assert signed["version"] == "0.2.0" and signed["minimum_schema"] == "0014"
    assert art["platform"] == LINUX and art["sha256"] == updates.file_sha256(path)
    assert art["url"] == f"{r.base}releases/0.2.0/{path.name}" and art["signature"]

    status = _check(r)
    assert status.state == "ready", status.message
    assert status.version == "0.2.0" and "ready to install (verified)" in status.message
    assert status.path.read_bytes() == path.read_bytes()
    # already downloaded and still intact: not fetched again
    assert _check(r).path == status.path
    # the version already installed is not offered
    assert _check(r, current="0.2.0").state == "current"
    assert _check(r, current="0.10.0").state == "current"  # newer than the release
    # the same manifest through s3:// (a workstation with AWS credentials)
    assert _check(r, manifest_url=f"s3://{r.bucket}/releases/latest.json").state == "ready"


def test_nothing_is_offered_before_it_is_promoted(release):
    _release(release)
    status = _check(release)
    assert status.state == "unavailable" and "404" in status.message


def test_a_release_needing_a_newer_schema_says_so(release):
    r = release
    _release(r, minimum_schema="0015")
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, out=io.StringIO())
    status = check_for_update(UpdateSettings(manifest_url=r.latest), current_version="0.1.0",
                              download_dir=r.tmp / "d", platform=LINUX, keys=r.trusted,
                              database_schema="0014")
    assert status.state == "ready" and status.needs_schema == "0015"
    assert "getmeds-admin db upgrade" in status.message


def test_each_build_host_adds_its_platform_to_the_versions_manifest(release):
    r = release
    _release(r)
    _release(r, tag="windows-x86_64")
    signed = _manifest(r, "releases/0.2.0/manifest.json")["signed"]
    assert [a["platform"] for a in signed["artefacts"]] == [LINUX, "windows-x86_64"]
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, platforms=(LINUX, "windows-x86_64"),
                       out=io.StringIO())
    with pytest.raises(publish_py.PublishError, match="no build for macos-arm64"):
        publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, platforms=("macos-arm64",),
                           out=io.StringIO())
    assert _check(r).state == "ready"


# ---------------------------------------------------------------- tampering


@pytest.mark.parametrize("change", [
    ("version", "0.9.9"),
    ("minimum_schema", "0001"),
    ("sha256", "0" * 64),
    ("url", "https://evil.example/getmeds.tar.gz"),
    ("size", 1),
])
def test_a_tampered_manifest_is_refused(release, change):
    r = release
    _release(r)
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, out=io.StringIO())
    envelope = _manifest(r)
    field, value = change
    target = envelope["signed"] if field in ("version", "minimum_schema") else \
        envelope["signed"]["artefacts"][0]
    target[field] = value
    _put_manifest(r, envelope)
    status = _check(r)
    assert status.state == "refused" and status.path is None
    assert "was refused: its signature does not match its content" in status.message
    assert "Nothing was downloaded" in status.message
    assert not (r.tmp / "downloads").exists()


def test_a_manifest_signed_with_another_key_or_not_at_all_is_refused(release):
    r = release
    _release(r)
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, out=io.StringIO())
    envelope = _manifest(r)
    # re-signed (a valid signature) by a key the app does not ship
    forged = updates.sign_manifest(envelope["signed"], Ed25519PrivateKey.generate())
    _put_manifest(r, forged)
    assert "not signed with a release key this build trusts" in _check(r).message
    # the trusted key's id on a foreign signature
    forged["signatures"][0]["key_id"] = envelope["signatures"][0]["key_id"]
    _put_manifest(r, forged)
    assert "signature does not match" in _check(r).message
    _put_manifest(r, {"signed": envelope["signed"], "signatures": []})
    assert "carries no signature" in _check(r).message
    r.s3.put_object(Bucket=r.bucket, Key="releases/latest.json", Body=b"<html>")
    assert "not valid JSON" in _check(r).message
    # a build with no release key at all cannot verify anything, and says so
    status = check_for_update(UpdateSettings(manifest_url=r.latest), current_version="0.1.0",
                              download_dir=r.tmp / "d", platform=LINUX, keys={})
    assert status.state == "refused" and "carries no release key" in status.message


def test_an_artefact_moved_to_another_version_is_refused(release):
    """The artefact's own signature binds it to its version and platform."""
    r = release
    _release(r)
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, out=io.StringIO())
    envelope = _manifest(r)
    other = Ed25519PrivateKey.generate()
    signed = envelope["signed"]
    # a correctly signed manifest whose artefact signature comes from elsewhere
    resigned = updates.sign_manifest(signed, r.key)
    resigned["signed"]["artefacts"][0]["signature"] = updates.sign_manifest(
        signed, other)["signed"]["artefacts"][0]["signature"]
    resigned["signatures"] = [{"key_id": updates.key_id(r.key.public_key()),
                               "signature": updates._b64(r.key.sign(
                                   updates.canonical(resigned["signed"])))}]
    _put_manifest(r, resigned)
    assert "the signature of getmeds-0.2.0-linux-x86_64.tar.gz does not match" in \
        _check(r).message


@pytest.mark.parametrize("how", ["same size", "longer", "shorter"])
def test_a_tampered_artefact_is_refused_and_deleted(release, how):
    r = release
    path = _release(r)
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, out=io.StringIO())
    data = bytearray(path.read_bytes())
    if how == "same size":
        data[len(data) // 2] ^= 0xFF
    elif how == "longer":
        data += b"malware"
    else:
        del data[-10:]
    r.s3.put_object(Bucket=r.bucket, Key=f"releases/0.2.0/{path.name}", Body=bytes(data))
    status = _check(r)
    assert status.state == "refused" and status.path is None
    assert ("SHA-256" in status.message and "has been deleted" in status.message) or \
        "larger than the signed manifest says" in status.message
    folder = r.tmp / "downloads" / "0.2.0"
    assert not folder.exists() or not any(folder.iterdir())


def test_a_damaged_earlier_download_is_fetched_again(release):
    r = release
    _release(r)
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, out=io.StringIO())
    first = _check(r).path
    first.write_bytes(b"half a download")
    again = _check(r)
    assert again.state == "ready" and again.path.stat().st_size > 100


# ------------------------------------------------------- IT's settings


def test_a_pinned_version_is_offered_and_nothing_else(release):
    r = release
    _release(r)
    _release(r, version="0.3.0")
    publish_py.promote(r.s3, r.bucket, "0.3.0", r.key, out=io.StringIO())
    assert _check(r).version == "0.3.0"
    pinned = _check(r, pin="0.2.0")
    assert pinned.state == "ready" and pinned.version == "0.2.0"
    # only the download ready is kept (the 0.3.0 one is gone)
    assert sorted(p.name for p in (r.tmp / "downloads").iterdir()) == ["0.2.0"]
    assert _check(r, pin="0.2.0", current="0.2.0").state == "current"
    # a pinned workstation on a newer version is offered the pinned one (IT holds back)
    assert _check(r, pin="0.2.0", current="0.3.0").version == "0.2.0"
    # a manifest of another version put in the pinned place is refused
    r.s3.copy_object(Bucket=r.bucket, Key="releases/0.2.0/manifest.json",
                     CopySource={"Bucket": r.bucket, "Key": "releases/0.3.0/manifest.json"})
    status = _check(r, pin="0.2.0")
    assert status.state == "refused" and "not the pinned 0.2.0" in status.message


def test_a_check_turned_off_or_not_set_up_fetches_nothing(tmp_path):
    def no_fetch(url):
        raise AssertionError(f"fetched {url}")

    off = check_for_update(UpdateSettings(manifest_url="https://x.example/latest.json",
                                          enabled=False), current_version="0.1.0",
                           download_dir=tmp_path, opener=no_fetch)
    assert off.state == "off" and "turned off by your IT department" in off.message
    unset = check_for_update(UpdateSettings(), current_version="0.1.0",
                             download_dir=tmp_path, opener=no_fetch)
    assert unset.state == "off" and "not set up" in unset.message


def test_an_unreachable_bucket_is_a_message(tmp_path):
    status = check_for_update(UpdateSettings(manifest_url="http://127.0.0.1:9/latest.json"),
                              current_version="0.1.0", download_dir=tmp_path,
                              keys={"x": Ed25519PrivateKey.generate().public_key()})
    assert status.state == "unavailable" and "could not be reached" in status.message


def test_plain_http_is_refused_except_to_this_computer():
    with pytest.raises(updates.UpdateUnavailable, match="https only"):
        updates.open_url("http://releases.example/latest.json")
    with pytest.raises(ValueError, match="https:// or s3://"):
        updates.check_settings({"manifest_url": "http://releases.example/x.json"}, "site")
    updates.check_settings({"manifest_url": "http://127.0.0.1:8000/x.json"}, "site")


# -------------------------------------------------------------- the publisher


def test_the_publisher_refuses_a_key_the_app_does_not_ship(release, tmp_path):
    r = release
    path = artefacts_py.make(_bundle(tmp_path), tmp_path / "out", tag=LINUX, version="0.2.0",
                             check_bundle=False)
    with pytest.raises(publish_py.PublishError, match="not among the keys"):
        publish_py.publish(r.s3, r.bucket, [path], Ed25519PrivateKey.generate(),
                           trusted=r.trusted, out=io.StringIO())


def test_the_signing_key_comes_from_secrets_manager_a_file_or_the_environment(
        release, monkeypatch, tmp_path):
    r = release
    out = io.StringIO()
    session = boto3.session.Session(region_name="us-east-1")
    keys_dir = tmp_path / "keys"
    secret_id = f"getmeds/release-signing-key-{r.bucket[-12:]}"  # (moto's state is shared)
    public = publish_py.keygen(secret_id, session=session, endpoint_url=r.server,
                               keys_dir=keys_dir, out=out)
    from_secret = publish_py.load_signing_key(secret_id=secret_id, session=session,
                                              endpoint_url=r.server)
    assert public.name == f"{updates.key_id(from_secret.public_key())}.pem"
    assert updates.key_id(updates.load_public_key(public.read_bytes())) == \
        updates.key_id(from_secret.public_key())
    pem = updates.private_key_pem(r.key)
    (tmp_path / "k.pem").write_text(pem)
    assert updates.key_id(publish_py.load_signing_key(
        key_file=str(tmp_path / "k.pem")).public_key()) in r.trusted
    monkeypatch.setenv(publish_py.KEY_ENV, pem)
    assert updates.key_id(publish_py.load_signing_key().public_key()) in r.trusted
    monkeypatch.delenv(publish_py.KEY_ENV)
    with pytest.raises(publish_py.PublishError, match="No signing key"):
        publish_py.load_signing_key()


def test_the_publisher_command_line(release, tmp_path, capsys):
    r = release
    path = artefacts_py.make(_bundle(tmp_path), tmp_path / "out", tag=LINUX, version="0.2.0",
                             check_bundle=False)
    key_file = tmp_path / "k.pem"
    key_file.write_text(updates.private_key_pem(r.key))
    assert publish_py.main(["--endpoint-url", r.server, "publish", "--bucket", r.bucket,
                            "--key-file", str(key_file), "--base-url", r.base,
                            str(path)]) == 1  # the test key is not shipped
    assert "not among the keys" in capsys.readouterr().err
    assert publish_py.main(["--endpoint-url", r.server, "publish", "--bucket", r.bucket,
                            "--key-file", str(key_file), "--base-url", r.base,
                            "--allow-unshipped-key", str(path)]) == 0
    assert publish_py.main(["--endpoint-url", r.server, "promote", "--bucket", r.bucket,
                            "--key-file", str(key_file), "--version", "0.2.0",
                            "--require-platform", LINUX]) == 0
    assert _check(r).state == "ready"


def test_the_shipped_release_keys_are_ed25519_public_keys():
    for key_id, key in updates.trusted_keys().items():
        assert updates.key_id(key) == key_id
    folder = ROOT / "getmeds_desktop" / "resources" / "release_keys"
    for pem in folder.glob("*"):
        assert b"PRIVATE" not in pem.read_bytes()  # never the private half


def test_two_build_hosts_publishing_at_once_both_end_up_in_the_manifest(release):
    """The manifest is written only if nobody changed it since it was read."""
    r = release
    mac = r.tmp / "mac" / "getmeds-0.2.0-macos-arm64.dmg"
    mac.parent.mkdir()
    mac.write_bytes(b"dmg" * 100)

    class Racing:
        """The S3 client of the Linux host; the macOS host publishes between
        the Linux host's read of the manifest and its write."""

        def __init__(self, s3):
            self.s3, self.raced = s3, False

        def __getattr__(self, name):
            return getattr(self.s3, name)

        def put_object(self, **kw):
            if kw["Key"].endswith("/manifest.json") and not self.raced:
                self.raced = True
                publish_py.publish(r.s3, r.bucket, [mac], r.key, base_url=r.base,
                                   trusted=r.trusted, minimum_schema="0014",
                                   out=io.StringIO())
            return self.s3.put_object(**kw)

    out = r.tmp / "linux"
    path = artefacts_py.make(_bundle(out), out, tag=LINUX, version="0.2.0", check_bundle=False)
    log = io.StringIO()
    publish_py.publish(Racing(r.s3), r.bucket, [path], r.key, base_url=r.base,
                       trusted=r.trusted, minimum_schema="0014", out=log)
    assert "merging again" in log.getvalue()
    signed = _manifest(r, "releases/0.2.0/manifest.json")["signed"]
    assert [a["platform"] for a in signed["artefacts"]] == [LINUX, "macos-arm64"]


def test_a_version_offered_to_the_workstations_is_never_replaced(release):
    r = release
    _release(r)
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, out=io.StringIO())
    with pytest.raises(publish_py.PublishError, match="already offered .* raise the version"):
        _release(r)
    _release(r, tag="macos-arm64")  # a platform that was not offered yet may follow
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, platforms=("macos-arm64",),
                       out=io.StringIO())


def test_getmeds_admin_update_check(release, monkeypatch, tmp_path, capsys):
    from getmeds_desktop import __version__, cli

    r = release
    newer = ".".join(str(int(p) + 1) if i == 0 else "0"
                     for i, p in enumerate(__version__.split(".")[:3]))
    out = r.tmp / "cli"
    path = artefacts_py.make(_bundle(out), out, tag=updates.platform_tag(), version=newer,
                             check_bundle=False)
    publish_py.publish(r.s3, r.bucket, [path], r.key, base_url=r.base, trusted=r.trusted,
                       minimum_schema="0001", out=io.StringIO())
    publish_py.promote(r.s3, r.bucket, newer, r.key, out=io.StringIO())
    monkeypatch.setattr(updates, "trusted_keys", lambda: dict(r.trusted))
    site = tmp_path / "getmeds.toml"
    site.write_text(f'[updates]\nmanifest_url = "{r.latest}"\n', encoding="utf-8")
    monkeypatch.setenv("GETMEDS_SITE_CONFIG", str(site))
    code = cli.main(["update", "check", "--download-dir", str(tmp_path / "dl")])
    assert code == 0 and f"GetMeds {newer} is ready to install (verified)" in \
        capsys.readouterr().out
    assert (tmp_path / "dl" / newer / path.name).read_bytes() == path.read_bytes()
    # a pinned version that was never published: the bucket says so, exit code 1
    code = cli.main(["update", "check", "--pin", "0.0.1", "--download-dir", str(tmp_path)])
    assert code == 1 and "404" in capsys.readouterr().out
    site.write_text("[updates]\nenabled = false\n", encoding="utf-8")
    assert cli.main(["update", "check"]) == 0
    assert "turned off" in capsys.readouterr().out


def test_the_verifier_checks_itself_for_the_smoke_test():
    assert updates.self_check().startswith("update verifier: Ed25519 works; ")


def test_a_download_stopped_by_closing_the_app_leaves_nothing(release):
    r = release
    _release(r)
    publish_py.promote(r.s3, r.bucket, "0.2.0", r.key, out=io.StringIO())
    status = check_for_update(UpdateSettings(manifest_url=r.latest), current_version="0.1.0",
                              download_dir=r.tmp / "downloads", platform=LINUX,
                              keys=r.trusted, cancelled=lambda: True)
    assert status.state == "unavailable" and "stopped" in status.message
    assert not any(p.is_file() for p in (r.tmp / "downloads").rglob("*"))
    assert _check(r).state == "ready"  # the next check downloads it


REAL_TARBALL = os.environ.get("GETMEDS_RELEASE_TARBALL")


@pytest.mark.skipif(not REAL_TARBALL, reason="set GETMEDS_RELEASE_TARBALL to the tarball of a "
                                             "real build (.ci/run does, after the build)")
def test_the_real_linux_tarball_is_signed_published_found_and_verified(release):
    """.ci/run: the tarball packaging/artefacts.py made from the frozen,
    smoke-tested bundle, through the same publish, promote and update check."""
    r = release
    path = Path(REAL_TARBALL)
    version, platform, _kind = publish_py.parse_artefact_name(path.name)
    publish_py.publish(r.s3, r.bucket, [path], r.key, base_url=r.base, trusted=r.trusted,
                       out=io.StringIO())
    publish_py.promote(r.s3, r.bucket, version, r.key, platforms=(platform,),
                       out=io.StringIO())
    status = check_for_update(UpdateSettings(manifest_url=r.latest), current_version="0.0.1",
                              download_dir=r.tmp / "downloads", platform=platform,
                              keys=r.trusted)
    assert status.state == "ready", status.message
    assert updates.file_sha256(status.path) == updates.file_sha256(path)
    sums = (path.parent / "SHA256SUMS").read_text()
    assert f"{updates.file_sha256(path)}  {path.name}" in sums
    with tarfile.open(status.path) as tar:
        names = set(tar.getnames())
    assert {"getmeds/getmeds", "getmeds/getmeds-admin"} <= names
