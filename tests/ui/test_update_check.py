"""The main window's update check: in the background at start, from the site
file's [updates]; a verified new version is shown in the status bar, a tampered
one is refused there, and a check IT turned off never runs. The release is
published to moto's S3 with a key made for the test (as tests/cloud/test_releases.py)."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from getmeds_desktop import updates
from tests.cloud.test_releases import LINUX, artefacts_py, publish_py, release, server  # noqa: F401
from tests.ui.helpers import window_maker

VERSION = "9.9.0"


@pytest.fixture
def published(release, monkeypatch):
    r = release
    out = r.tmp / "release"
    (out / "dist" / "getmeds").mkdir(parents=True)
    (out / "dist" / "getmeds" / "getmeds").write_bytes(b"frozen" * 1000)
    path = artefacts_py.make(out / "dist" / "getmeds", out, tag=updates.platform_tag(),
                             version=VERSION, check_bundle=False)
    publish_py.publish(r.s3, r.bucket, [path], r.key, base_url=r.base, trusted=r.trusted,
                       minimum_schema="0001", out=io.StringIO())
    publish_py.promote(r.s3, r.bucket, VERSION, r.key, out=io.StringIO())
    # this build trusts the test's key (a real build: the keys in its package data)
    monkeypatch.setattr(updates, "trusted_keys", lambda: dict(r.trusted))
    return r


def _window(qtbot, gui_world, connector, empty_config, **settings):
    cfg = dataclasses.replace(empty_config, updates=settings)
    maker = window_maker(qtbot, gui_world, connector, cfg)
    return maker, next(maker)


def test_a_new_version_is_found_verified_and_shown(qtbot, gui_world, connector, empty_config,
                                                   published):
    maker, make = _window(qtbot, gui_world, connector, empty_config,
                          manifest_url=published.latest)
    try:
        win = make("pharmacist")
        qtbot.waitUntil(lambda: win.update_label.isVisible(), timeout=20000)
        assert win.update_label.text() == f"⬆ GetMeds {VERSION} is ready"
        assert "ready to install (verified)" in win.update_label.toolTip()
        assert win.update_status.path.is_file()
        assert "ready to install" in win.statusBar().currentMessage()
        qtbot.waitUntil(lambda: win.update_action.isEnabled(), timeout=5000)
    finally:
        next(maker, None)


def test_a_tampered_manifest_is_refused_in_the_status_bar(qtbot, gui_world, connector,
                                                          empty_config, published):
    r = published
    envelope = json.loads(r.s3.get_object(Bucket=r.bucket, Key="releases/latest.json")[
        "Body"].read())
    envelope["signed"]["artefacts"][0]["url"] = "https://evil.example/getmeds.tar.gz"
    r.s3.put_object(Bucket=r.bucket, Key="releases/latest.json",
                    Body=json.dumps(envelope).encode())
    maker, make = _window(qtbot, gui_world, connector, empty_config, manifest_url=r.latest)
    try:
        win = make("clerk")
        qtbot.waitUntil(lambda: win.update_label.isVisible(), timeout=20000)
        assert win.update_label.text() == "⚠ Update refused"
        assert "signature does not match" in win.update_label.toolTip()
        assert win.update_status.path is None
    finally:
        next(maker, None)


def test_a_check_turned_off_by_it_never_runs(qtbot, gui_world, connector, empty_config,
                                             monkeypatch):
    def never(*a, **k):
        raise AssertionError("the update check ran")

    monkeypatch.setattr(updates, "check_for_update", never)
    maker, make = _window(qtbot, gui_world, connector, empty_config, enabled=False,
                          manifest_url="https://releases.example/releases/latest.json")
    try:
        win = make("pharmacist")
        qtbot.waitUntil(lambda: not win.workspace.tasks.busy, timeout=10000)
        assert not win.update_action.isEnabled()
        assert "Turned off by your IT department" in win.update_action.toolTip()
        assert win.update_label.isHidden()
    finally:
        next(maker, None)


def test_a_key_this_build_does_not_trust_is_refused(qtbot, gui_world, connector, empty_config,
                                                    published, monkeypatch):
    other = Ed25519PrivateKey.generate().public_key()
    monkeypatch.setattr(updates, "trusted_keys", lambda: {updates.key_id(other): other})
    maker, make = _window(qtbot, gui_world, connector, empty_config,
                          manifest_url=published.latest)
    try:
        win = make("pharmacist")
        qtbot.waitUntil(lambda: win.update_label.isVisible(), timeout=20000)
        assert "not signed with a release key this build trusts" in win.update_label.toolTip()
    finally:
        next(maker, None)
