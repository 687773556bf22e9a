"""cloud/template.yaml cannot open the database to the world, and the backups
it keeps cannot be destroyed by the function that writes them.

The template is read as CloudFormation reads it (cfnlint's decoder), and the
backup bucket's Object Lock is exercised on moto with the real backup and
restore code and the real PostgreSQL: the function's writes are locked for at
least two years, deleting or overwriting a backup leaves the locked version in
place, and a restore still works.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from getmeds_desktop.backup import core
from tests.cloud.test_backup import aws, aws_env, databases, source  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "cloud" / "template.yaml"
LOCKED = "rivera-locked-backups"


@pytest.fixture(scope="module")
def template() -> dict:
    from cfnlint.decode import decode

    parsed, errors = decode(str(TEMPLATE))
    assert not errors
    return parsed


# -------------------------------------------------------------- the network

WIDE_OR_WRONG = [
    "0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8", "172.16.0.0/12",
    "203.0.0.0/15", "203.0.113.0/9", "203.0.113.10/33", "203.0.113.10/", "203.0.113.10",
    "256.0.113.10/32", "203.0.113/24", "203.0.113.10/32 ", " 203.0.113.10/32",
    "203.0.113.10/32,0.0.0.0/0", "2001:db8::/32", "::/0", "0.0.0.0/00", "1.2.3.4/016",
]
NARROW = ["203.0.113.10/32", "198.51.100.0/24", "10.20.0.0/16", "192.0.2.128/25",
          "100.64.0.0/16"]


def _allowed(template: dict, name: str, value: str) -> bool:
    pattern = template["Parameters"][name]["AllowedPattern"]
    # CloudFormation matches the whole value; the pattern is anchored with ^...$
    return re.fullmatch(pattern, value) is not None


@pytest.mark.parametrize("name", ["PharmacyCidr1", "PharmacyCidr2"])
@pytest.mark.parametrize("value", WIDE_OR_WRONG)
def test_pharmacy_ranges_refuse_the_internet_and_anything_wider_than_16(template, name, value):
    assert not _allowed(template, name, value)


@pytest.mark.parametrize("name", ["PharmacyCidr1", "PharmacyCidr2"])
@pytest.mark.parametrize("value", NARROW)
def test_pharmacy_ranges_accept_a_pharmacys_addresses(template, name, value):
    assert _allowed(template, name, value)


def test_the_second_range_may_be_left_empty_but_not_the_first(template):
    assert _allowed(template, "PharmacyCidr2", "")
    assert not _allowed(template, "PharmacyCidr1", "")


def test_every_prefix_from_0_to_32_is_judged_by_its_width(template):
    for bits in range(33):
        assert _allowed(template, "PharmacyCidr1", f"203.0.0.0/{bits}") == (bits >= 16)


def test_the_rules_name_the_internet_too(template):
    rule = template["Rules"]["PharmacyRangesAreNotTheInternet"]["Assertions"]
    refs = {a["Assert"]["Fn::Not"][0]["Fn::Contains"][1]["Ref"] for a in rule}
    assert refs == {"PharmacyCidr1", "PharmacyCidr2"}
    for a in rule:
        assert "0.0.0.0/0" in a["Assert"]["Fn::Not"][0]["Fn::Contains"][0]


def test_the_database_is_reached_only_through_the_checked_ranges(template):
    r = template["Resources"]
    cidrs = [i.get("CidrIp") for i in r["DatabaseSecurityGroup"]["Properties"]
             ["SecurityGroupIngress"]]
    cidrs.append(r["DatabaseIngressSecondCidr"]["Properties"]["CidrIp"])
    assert cidrs == [{"Ref": "PharmacyCidr1"}, {"Ref": "PharmacyCidr2"}]
    for name, res in r.items():
        if res["Type"] in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroup"):
            rules = res["Properties"].get("SecurityGroupIngress", [res["Properties"]])
            assert all(x.get("CidrIp") != "0.0.0.0/0" and x.get("CidrIpv6") != "::/0"
                       for x in rules), name


# ------------------------------------------------------------- the backups

def test_backups_are_locked_for_at_least_two_years(template):
    params = template["Parameters"]
    bucket = template["Resources"]["BackupBucket"]["Properties"]
    assert bucket["ObjectLockEnabled"] is True
    lock = bucket["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]
    assert retention == {"Mode": {"Ref": "BackupLockMode"}, "Days": {"Ref": "BackupLockDays"}}
    assert set(params["BackupLockMode"]["AllowedValues"]) == {"GOVERNANCE", "COMPLIANCE"}
    assert params["BackupLockMode"]["Default"] == "GOVERNANCE"
    assert params["BackupLockDays"]["MinValue"] >= 730 and params["BackupLockDays"][
        "Default"] >= 730
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"


DESTRUCTIVE = {"s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
               "s3:PutObjectRetention", "s3:PutObjectLegalHold",
               "s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning",
               "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
               "s3:DeleteBucket"}


def test_the_functions_role_cannot_destroy_backups(template):
    r = template["Resources"]
    granted = set()
    for policy in r["BackupFunctionRole"]["Properties"]["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            granted |= set(actions)
    assert not any(a == "s3:*" or a.endswith("*") for a in granted)
    assert not granted & DESTRUCTIVE
    # and the bucket denies it those even if the role were given more later
    statements = r["BackupBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    deny = next(s for s in statements if s["Sid"] == "BackupFunctionCannotDestroyBackups")
    assert deny["Effect"] == "Deny" and set(deny["Action"]) == DESTRUCTIVE
    assert deny["Condition"]["ArnEquals"]["aws:PrincipalArn"] == {
        "Fn::GetAtt": ["BackupFunctionRole", "Arn"]}
    # the only delete it has is for its own unfinished uploads (a delete marker)
    deletes = [st for p in r["BackupFunctionRole"]["Properties"]["Policies"]
               for st in p["PolicyDocument"]["Statement"] if "s3:DeleteObject" in st["Action"]]
    assert [d["Resource"] for d in deletes] == [
        {"Fn::Sub": "${BackupBucket.Arn}/backups/.incoming/*"}]


# ------------------------------------------------- Object Lock on moto, for real

@pytest.fixture
def locked_bucket(aws, template) -> Iterator[SimpleNamespace]:
    """A bucket configured as the template configures the backup bucket."""
    params = template["Parameters"]
    mode = params["BackupLockMode"]["Default"]
    days = params["BackupLockDays"]["Default"]
    # WORKAROUND for moto: it asks CopyObject into a bucket with default
    # retention for the checksum header that S3 documents for uploads with a
    # body (PutObject, UploadPart); the backup's final copy has no body.
    def checksum_header(request, **_kw):
        request.headers["x-amz-sdk-checksum-algorithm"] = "SHA256"

    aws.s3.meta.events.register("before-sign.s3.CopyObject", checksum_header)
    aws.s3.create_bucket(Bucket=LOCKED, ObjectLockEnabledForBucket=True)
    aws.s3.put_object_lock_configuration(Bucket=LOCKED, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}}})
    yield SimpleNamespace(s3=aws.s3, mode=mode, days=days)


def _versions(s3, key: str) -> list[dict]:
    out = s3.list_object_versions(Bucket=LOCKED, Prefix=key)
    return [v for v in out.get("Versions", []) if v["Key"] == key]


def test_a_locked_backup_survives_its_own_writer(locked_bucket, source, databases):
    s3 = locked_bucket.s3
    info = core.run_backup(core.params_from_secret(source.secret), s3, LOCKED)
    head = s3.head_object(Bucket=LOCKED, Key=info.key)
    assert head["ObjectLockMode"] == locked_bucket.mode
    until = head["ObjectLockRetainUntilDate"]
    assert until - dt.datetime.now(dt.UTC) > dt.timedelta(days=729)
    original = _versions(s3, info.key)
    assert len(original) == 1
    version = original[0]["VersionId"]

    # deleting the version is refused by the lock
    with pytest.raises(ClientError) as caught:
        s3.delete_object(Bucket=LOCKED, Key=info.key, VersionId=version)
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    # (shortening a lock needs s3:PutObjectRetention and, in governance mode,
    # s3:BypassGovernanceRetention: the role has neither and the bucket policy
    # denies both, see test_the_functions_role_cannot_destroy_backups; moto does
    # not model that refusal)
    # an overwrite and a plain delete only add a newer version and a delete marker
    s3.put_object(Bucket=LOCKED, Key=info.key, Body=b"ransom note", ChecksumAlgorithm="SHA256")
    s3.delete_object(Bucket=LOCKED, Key=info.key)
    kept = {v["VersionId"] for v in _versions(s3, info.key)}
    assert version in kept
    body = s3.get_object(Bucket=LOCKED, Key=info.key, VersionId=version)["Body"].read()
    assert core.hashlib.sha256(body).hexdigest() == info.sha256


def test_the_restore_path_works_on_a_locked_bucket(locked_bucket, source, databases):
    s3 = locked_bucket.s3
    info = core.run_backup(core.params_from_secret(source.secret), s3, LOCKED)
    assert [b.key for b in core.list_backups(s3, LOCKED)] == [info.key]
    target = databases.new()
    restored = core.restore_backup(s3, LOCKED, info.key, target)
    assert restored.row_counts == info.row_counts


def test_the_embedded_copy_upload_works_on_a_locked_bucket(locked_bucket, tmp_path):
    from getmeds_desktop import db
    from getmeds_desktop.backup import local

    path = tmp_path / "data" / "getmeds.sqlite3"
    engine, _ = db.prepare_embedded(path)
    copy = local.backup_now(engine, path)
    engine.dispose()
    key = local.upload(copy, locked_bucket.s3, LOCKED)
    head = locked_bucket.s3.head_object(Bucket=LOCKED, Key=key)
    assert head["ObjectLockMode"] == locked_bucket.mode


def test_the_readme_says_which_mode_and_why():
    text = (ROOT / "cloud" / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Backups cannot be destroyed"):]
    assert "GOVERNANCE" in section and "COMPLIANCE" in section
    assert "BackupLockDays" in section and "731" in section
    assert "version" in section  # how to restore the locked version after an overwrite


def test_boto3_is_available_for_the_tests():
    assert boto3.__version__
