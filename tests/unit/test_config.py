"""Configuration files: IT's site file presets and locks, the user's file,
connection profiles, and clear messages for broken files."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from getmeds_desktop import config
from getmeds_desktop.errors import ConfigError
from getmeds_desktop.reports import ReportParams, SiteOverrides, generate

SITE = """
default_profile = "pharmacy"
auto_lock_minutes = 3
paper_size = "a4"
locked = ["auto_lock_minutes", "pharmacy"]

[pharmacy]
name = "Rivera Family Pharmacy"
address = "12 Elm Street, Dayton, OH"
dea_number = "BR1234563"

[profiles.pharmacy]
host = "getmeds.abc123.us-east-1.rds.amazonaws.com"
database = "getmeds"
sslrootcert = "global-bundle.pem"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_site_file_presets_profiles_and_locks(tmp_path):
    site = write(tmp_path / "site" / "getmeds.toml", SITE)
    user = write(tmp_path / "user" / "config.toml", """
auto_lock_minutes = 60
paper_size = "letter"
[pharmacy]
name = "Someone Else"
[profiles.lab]
url = "postgresql://db.lab.local/getmeds"
""")
    cfg = config.load_config([site], user)
    assert cfg.auto_lock_minutes == 3          # locked: the user's 60 is ignored
    assert cfg.pharmacy["name"] == "Rivera Family Pharmacy"  # locked too
    assert cfg.paper_size == "letter"          # not locked: the user's choice wins
    assert cfg.default_profile == "pharmacy"
    assert set(cfg.profiles) == {"pharmacy", "lab"}
    assert cfg.files == (site, user)
    url = cfg.profiles["pharmacy"].to_url()
    assert "sslmode=verify-full" in url        # the default for a remote host
    # a relative CA file is found next to the file that names it
    assert f"sslrootcert={site.parent / 'global-bundle.pem'}" in url.replace("%2F", "/")


def test_a_malformed_file_names_the_file_and_the_line(tmp_path):
    bad = write(tmp_path / "getmeds.toml", 'default_profile = "pharmacy"\nauto_lock_minutes = \n')
    with pytest.raises(ConfigError) as caught:
        config.load_config([bad], tmp_path / "none.toml")
    message = str(caught.value)
    assert str(bad) in message and "line 2" in message


@pytest.mark.parametrize(("text", "words"), [
    ('[profiles.x]\nhost = "db.example.org"\ndatabase = "g"\nsslmode = "disable"\n',
     "must be encrypted"),
    ('[profiles.x]\nhost = "db.example.org"\ndatabase = "g"\nport = "five"\n',
     "port must be a number"),
    ("auto_lock_minutes = 0\n", "from 1 to 240"),
    ('locked = "all"\n', "locked must be a list"),
    ('[profiles.embedded]\nurl = "sqlite://"\n', "reserved"),
])
def test_bad_settings_are_refused_with_a_reason(tmp_path, text, words):
    site = write(tmp_path / "getmeds.toml", text)
    with pytest.raises(ConfigError, match=words):
        config.load_config([site], tmp_path / "none.toml")


def test_where_site_files_are_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("GETMEDS_SITE_CONFIG", str(tmp_path / "it.toml"))
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "GetMeds" / "getmeds"))
    paths = config.site_config_candidates()
    assert paths[-2] == (tmp_path / "GetMeds" / "getmeds.toml").resolve()  # next to the program
    assert paths[-1] == tmp_path / "it.toml"


def test_reports_carry_the_site_files_pharmacy_details(tmp_path, sf, world):
    site = SiteOverrides({"name": "Rivera Family Pharmacy", "dea_number": "BR1234563"}, "a4")
    out = generate(sf, world.admin, "staff", ReportParams(), tmp_path / "staff.pdf", site=site)
    reader = PdfReader(str(out.path))
    text = reader.pages[0].extract_text()
    assert "Rivera Family Pharmacy" in text and "DEA BR1234563" in text
    width, height = (float(x) for x in reader.pages[0].mediabox[2:])
    assert round(width) == 595 and round(height) == 842  # A4, from the site file
    with pytest.raises(Exception, match="paper_size"):
        generate(sf, world.admin, "staff", ReportParams(), tmp_path / "x.pdf",
                 site=SiteOverrides({}, "tabloid"))


def test_the_site_file_sets_and_locks_the_update_check(tmp_path):
    from getmeds_desktop.updates import UpdateSettings

    site = write(tmp_path / "site" / "getmeds.toml", """
locked = ["updates"]
[updates]
manifest_url = "https://rivera-getmeds-releases.s3.amazonaws.com/releases/latest.json"
pin = "0.2.0"
""")
    user = write(tmp_path / "user" / "config.toml", "[updates]\nenabled = false\n")
    cfg = config.load_config([site], user)
    settings = UpdateSettings.from_config(cfg.updates)
    assert settings.active and settings.pin == "0.2.0"  # the user cannot turn it off
    assert settings.url_to_check() == (
        "https://rivera-getmeds-releases.s3.amazonaws.com/releases/0.2.0/manifest.json")
    off = write(tmp_path / "off" / "getmeds.toml", "[updates]\nenabled = false\n"
                "manifest_url = 's3://rivera-getmeds-releases/releases/latest.json'\n")
    assert not UpdateSettings.from_config(config.load_config([off], user).updates).active
    assert not UpdateSettings.from_config(config.load_config([], user).updates).active


@pytest.mark.parametrize(("text", "words"), [
    ('[updates]\nenabled = "no"\n', "updates.enabled must be true or false"),
    ('[updates]\nmanifest_url = "ftp://x/latest.json"\n', "https:// or s3://"),
    ('[updates]\npin = "latest"\n', "not a version number"),
    ('[updates]\nchannel = "beta"\n', "unknown setting updates.channel"),
    ('updates = 1\n', "[updates] must be a table"),
])
def test_wrong_update_settings_are_refused(tmp_path, text, words):
    site = write(tmp_path / "getmeds.toml", text)
    with pytest.raises(ConfigError, match=re.escape(words)):
        config.load_config([site], tmp_path / "none.toml")


def test_a_profile_may_name_a_reporting_host_for_reports(tmp_path):
    site = write(tmp_path / "getmeds.toml", """
default_profile = "pharmacy"
[profiles.pharmacy]
host = "rivera-getmeds-database.abc123.us-east-1.rds.amazonaws.com"
database = "getmeds"
sslrootcert = "global-bundle.pem"
reporting_host = "rivera-getmeds-reporting.abc123.us-east-1.rds.amazonaws.com"
""")
    cfg = config.load_config([site], tmp_path / "none.toml")
    target = config.resolve_database(config=cfg)
    from sqlalchemy.engine import make_url

    primary, reporting = make_url(target.url), make_url(target.reporting_url)
    assert reporting.host == "rivera-getmeds-reporting.abc123.us-east-1.rds.amazonaws.com"
    # everything else as the primary's: database, port, TLS verified with the same CA
    assert (reporting.database, reporting.port, reporting.query) == \
        (primary.database, primary.port, primary.query)
    assert reporting.query["sslmode"] == "verify-full"
    plain = write(tmp_path / "plain" / "getmeds.toml",
                  '[profiles.p]\nhost = "db.example"\ndatabase = "g"\n')
    assert config.resolve_database(profile="p", config=config.load_config(
        [plain], tmp_path / "none.toml")).reporting_url is None


@pytest.mark.parametrize(("line", "words"), [
    ('reporting_host = ""', "reporting_host must be the host name"),
    ("reporting_host = 5", "reporting_host must be the host name"),
    ('reporting_host = "a b"', "reporting_host must be the host name"),
    ("reporting_port = 0", "reporting_port must be a number"),
])
def test_a_wrong_reporting_host_is_refused(tmp_path, line, words):
    site = write(tmp_path / "getmeds.toml",
                 f'[profiles.p]\nhost = "db.example"\ndatabase = "g"\n{line}\n')
    with pytest.raises(ConfigError, match=words):
        config.load_config([site], tmp_path / "none.toml")
