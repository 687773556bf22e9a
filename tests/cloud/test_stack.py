"""cloud/template.yaml is lint-clean, and cloud/deploy.py creates (and then
updates) the stack on a moto server."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "cloud" / "template.yaml"


def load_deploy():
    spec = importlib.util.spec_from_file_location("getmeds_deploy", ROOT / "cloud" / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_is_cfn_lint_clean():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    out = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_template_keeps_the_promises():
    """The security and retention properties IT relies on, read from the template."""
    from cfnlint.decode import decode

    template, errors = decode(str(TEMPLATE))
    assert not errors
    r = template["Resources"]
    db = r["Database"]["Properties"]
    assert db["StorageEncrypted"] is True and db["DeletionProtection"] is True
    assert db["BackupRetentionPeriod"] == {"Ref": "BackupRetentionDays"}
    assert r["DatabaseParameters"]["Properties"]["Parameters"]["rds.force_ssl"] == "1"
    ingress = r["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [i["CidrIp"] for i in ingress] == [{"Ref": "PharmacyCidr1"}]
    bucket = r["BackupBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    rule = bucket["LifecycleConfiguration"]["Rules"][0]
    assert template["Parameters"]["BackupRetentionDaysS3"]["MinValue"] >= 730
    assert rule["ExpirationInDays"] == {"Ref": "BackupRetentionDaysS3"}
    deny = r["BackupBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    statements = r["BackupFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"]
    assert all(s["Resource"] != "*" for s in statements)  # least privilege: no wildcards
    assert {"BackupErrorsAlarm", "BackupDidNotRunAlarm", "BackupScheduleRule"} <= set(r)
    assert set(template["Outputs"]) >= {"DatabaseEndpoint", "BackupBucketName", "AlertTopicArn",
                                        "BackupSecretArn"}


def test_the_function_package_holds_the_handler_and_the_backup_code():
    code = load_deploy().build_zip()
    names = zipfile.ZipFile(io.BytesIO(code)).namelist()
    assert "handler.py" in names and "getmeds_desktop/backup/core.py" in names
    # reproducible: an unchanged function is not redeployed
    assert load_deploy().build_zip() == code


@pytest.fixture
def moto_endpoint(monkeypatch) -> Iterator[str]:
    from moto.rds.models import DBParameterGroup
    from moto.server import ThreadedMotoServer

    # moto resolves {"Ref": <a DBParameterGroup>} to the Python object instead of
    # the group's name (real CloudFormation returns the name); teach it the name.
    if not hasattr(DBParameterGroup, "physical_resource_id"):
        monkeypatch.setattr(DBParameterGroup, "physical_resource_id",
                            property(lambda self: self.name), raising=False)

    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    # moto's state is per process: start from nothing (another test's stacks)
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset",
                                                  method="POST"), timeout=30).close()
    yield f"http://{host}:{port}"
    server.stop()


# moto's CloudFormation creates no CloudWatch alarms and no S3 bucket policies
# (it says so with a warning for each); test_template_keeps_the_promises checks
# those in the template instead.
@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_deploy_creates_then_updates_the_stack(moto_endpoint):
    session = boto3.session.Session(region_name="us-east-1")
    ec2 = session.client("ec2", endpoint_url=moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24",
                                 AvailabilityZone=f"us-east-1{az}")["Subnet"]["SubnetId"]
               for i, az in enumerate("ab")]
    # moto's CloudFormation cannot create AWS::SecretsManager::Secret: the test
    # makes the secret with boto3 and hands it to the stack as an existing one.
    secret = session.client("secretsmanager", endpoint_url=moto_endpoint).create_secret(
        Name="getmeds/backup", SecretString=json.dumps({"username": "nightly"}))["ARN"]
    params = {
        "VpcId": vpc, "DatabaseSubnetIds": ",".join(subnets),
        "LambdaSubnetIds": ",".join(subnets), "PharmacyCidr1": "203.0.113.10/32",
        "PgDumpLayerArn": "arn:aws:lambda:us-east-1:123456789012:layer:pg15:1",
        "ExistingBackupSecretArn": secret, "AlertEmail": "it@rivera-pharmacy.example",
    }
    deploy = load_deploy()
    out = io.StringIO()
    outputs = deploy.deploy(session, "rivera-getmeds", params, endpoint_url=moto_endpoint,
                            delay=1, out=out)
    assert outputs["BackupSecretArn"] == secret
    assert outputs["BackupBucketName"] and outputs["AlertTopicArn"].startswith("arn:aws:sns:")
    s3 = session.client("s3", endpoint_url=moto_endpoint)
    bucket = outputs["BackupBucketName"]
    # (moto applies the bucket's encryption from the template, but not its
    # versioning or lifecycle: those are checked in the template above)
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    cfn = session.client("cloudformation", endpoint_url=moto_endpoint)
    stack = cfn.describe_stacks(StackName="rivera-getmeds")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    function = session.client("lambda", endpoint_url=moto_endpoint).get_function_configuration(
        FunctionName=outputs["BackupFunctionName"])
    assert function["Handler"] == "handler.handler" and function["Timeout"] == 900
    assert function["Environment"]["Variables"]["BACKUP_BUCKET"] == bucket
    assert function["Environment"]["Variables"]["DB_SECRET_ARN"] == secret
    rules = session.client("events", endpoint_url=moto_endpoint).list_rules()["Rules"]
    assert [r["ScheduleExpression"] for r in rules] == ["cron(0 7 * * ? *)"]
    assert "Stack rivera-getmeds: CREATE_COMPLETE" in out.getvalue()

    # the same deploy again changes nothing, and says so
    again = io.StringIO()
    deploy.deploy(session, "rivera-getmeds", params, endpoint_url=moto_endpoint, delay=1,
                  out=again)
    text = again.getvalue()
    assert "already up to date" in text or "UPDATE_COMPLETE" in text


def test_the_database_stays_up_and_can_be_recovered():
    """Multi-AZ on by default, point-in-time recovery, deletion protection, and
    a read replica for reports when asked for."""
    from cfnlint.decode import decode

    template, errors = decode(str(TEMPLATE))
    assert not errors
    params, r = template["Parameters"], template["Resources"]
    assert params["MultiAZ"]["Default"] == "true"
    db = r["Database"]["Properties"]
    assert db["MultiAZ"] == {"Ref": "MultiAZ"}
    assert db["DeletionProtection"] is True and db["DeleteAutomatedBackups"] is False
    assert params["BackupRetentionDays"]["MinValue"] >= 7  # point in time, a week back at least
    assert r["Database"]["DeletionPolicy"] == "Snapshot"
    assert params["ReportingReplica"]["Default"] == "false"
    replica = r["ReportingDatabase"]
    assert replica["Condition"] == "HasReplica"
    assert replica["Properties"]["SourceDBInstanceIdentifier"] == {"Ref": "Database"}
    assert replica["Properties"]["VPCSecurityGroups"] == [{"Ref": "DatabaseSecurityGroup"}]
    assert replica["Properties"]["DBParameterGroupName"] == {"Ref": "DatabaseParameters"}
    assert template["Outputs"]["ReportingEndpoint"]["Condition"] == "HasReplica"


@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_a_multi_az_stack_with_a_reporting_replica_deploys_on_moto(moto_endpoint):
    session = boto3.session.Session(region_name="us-east-1")
    ec2 = session.client("ec2", endpoint_url=moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24",
                                 AvailabilityZone=f"us-east-1{az}")["Subnet"]["SubnetId"]
               for i, az in enumerate("ab")]
    secret = session.client("secretsmanager", endpoint_url=moto_endpoint).create_secret(
        Name="getmeds/backup", SecretString=json.dumps({"username": "nightly"}))["ARN"]
    params = {
        "VpcId": vpc, "DatabaseSubnetIds": ",".join(subnets),
        "LambdaSubnetIds": ",".join(subnets), "PharmacyCidr1": "203.0.113.10/32",
        "PgDumpLayerArn": "arn:aws:lambda:us-east-1:123456789012:layer:pg15:1",
        "ExistingBackupSecretArn": secret, "ReportingReplica": "true",
    }
    outputs = load_deploy().deploy(session, "rivera-ha", params, endpoint_url=moto_endpoint,
                                   delay=1, out=io.StringIO())
    rds = session.client("rds", endpoint_url=moto_endpoint)
    instances = {i["DBInstanceIdentifier"]: i for i in rds.describe_db_instances()["DBInstances"]}
    primary = next(i for i in instances.values()
                   if not i.get("ReadReplicaSourceDBInstanceIdentifier"))
    # (moto's CloudFormation drops DeletionProtection; the template test checks it)
    assert primary["MultiAZ"] is True and primary["BackupRetentionPeriod"] == 14
    replica = next(i for i in instances.values()
                   if i.get("ReadReplicaSourceDBInstanceIdentifier"))
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == primary["DBInstanceIdentifier"]
    assert outputs["ReportingEndpoint"] == replica["Endpoint"]["Address"]
