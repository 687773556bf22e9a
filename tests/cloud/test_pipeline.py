"""The release pipeline (cloud/pipeline.yaml) lints clean and keeps its
promises; the buildspecs it names exist and match the CodeBuild buildspec
schema; the macOS workflow matches the GitHub Actions workflow shape; the stack
deploys on moto as far as moto goes."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import boto3
import jsonschema
import pytest
import yaml

from tests.cloud.test_stack import moto_endpoint  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "cloud" / "pipeline.yaml"
BUILDSPECS = sorted((ROOT / "cloud" / "buildspecs").glob("*.yml"))
WORKFLOW = ROOT / ".github" / "workflows" / "release-macos.yml"


@pytest.fixture(scope="module")
def template() -> dict:
    from cfnlint.decode import decode

    parsed, errors = decode(str(PIPELINE))
    assert not errors
    return parsed


def test_the_pipeline_is_cfn_lint_clean():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    out = subprocess.run([str(cfn_lint), str(PIPELINE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _stages(template: dict) -> dict[str, list[dict]]:
    stages = template["Resources"]["Pipeline"]["Properties"]["Stages"]
    return {s["Name"]: s["Actions"] for s in stages}


def test_the_pipeline_builds_publishes_and_offers_only_after_approval(template):
    stages = _stages(template)
    assert list(stages) == ["Source", "Build", "Publish", "Approve", "Promote"]
    builds = {a["Name"]: a for a in stages["Build"]}
    assert set(builds) == {"Linux", "Windows"}
    assert {a["RunOrder"] for a in builds.values()} == {1}  # side by side
    r = template["Resources"]
    env = {k: r[k]["Properties"]["Environment"] for k in ("LinuxBuild", "WindowsBuild")}
    assert env["LinuxBuild"]["Type"] == "LINUX_CONTAINER"
    assert env["WindowsBuild"]["Type"].startswith("WINDOWS_SERVER_")
    (publish,) = stages["Publish"]
    assert [i["Name"] for i in publish["InputArtifacts"]] == \
        ["Source", "LinuxRelease", "WindowsRelease"]
    assert stages["Approve"][0]["ActionTypeId"]["Provider"] == "Manual"
    # every buildspec named exists in the repository
    for name in ("LinuxBuild", "WindowsBuild", "PublishBuild", "PromoteBuild"):
        spec = r[name]["Properties"]["Source"]["BuildSpec"]
        assert (ROOT / spec).is_file(), spec
    # the publish buildspec reads the build outputs under the names the pipeline gives them
    text = (ROOT / "cloud" / "buildspecs" / "publish.yml").read_text()
    assert "$CODEBUILD_SRC_DIR_LinuxRelease" in text and "$CODEBUILD_SRC_DIR_WindowsRelease" in text


def _statements(role: dict) -> list[dict]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_only_the_publish_steps_read_the_signing_key_or_write_releases(template):
    r = template["Resources"]
    key = {"Ref": "SigningKeySecretArn"}
    readers = {name for name, res in r.items() if res["Type"] == "AWS::IAM::Role"
               and any(s.get("Resource") == key for s in _statements(res))}
    assert readers == {"PublishRole", "MacOSWorkflowRole"}
    assert r["LinuxBuild"]["Properties"]["ServiceRole"] == {"Fn::GetAtt": ["BuildRole", "Arn"]}
    assert r["WindowsBuild"]["Properties"]["ServiceRole"] == {"Fn::GetAtt": ["BuildRole", "Arn"]}
    build = str(_statements(r["BuildRole"]))
    assert "ReleaseBucket" not in build and "SigningKey" not in build
    for role in ("BuildRole", "PublishRole", "PipelineRole", "MacOSWorkflowRole"):
        assert all(s.get("Resource") != "*" for s in _statements(r[role]) if isinstance(s, dict))
    # the macOS workflow's role is for the release branch of this repository only
    trust = r["MacOSWorkflowRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert "token.actions.githubusercontent.com:sub" in trust["Condition"]["StringEquals"]


def test_the_release_bucket_is_read_from_the_pharmacy_only(template):
    r = template["Resources"]
    bucket = r["ReleaseBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    statements = r["ReleaseBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    tls, read = statements
    assert tls["Effect"] == "Deny" and tls["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    assert read["Effect"] == "Allow" and read["Action"] == "s3:GetObject"
    assert read["Resource"] == {"Fn::Sub": "${ReleaseBucket.Arn}/releases/*"}
    assert "aws:SourceIp" in read["Condition"]["IpAddress"]
    pattern = template["Parameters"]["PharmacyCidr1"]["AllowedPattern"]
    import re

    assert not re.fullmatch(pattern, "0.0.0.0/0") and re.fullmatch(pattern, "203.0.113.10/32")


# ----------------------------------------------------------------- buildspecs

_COMMANDS = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
_PHASE = {
    "type": "object", "additionalProperties": False,
    "properties": {"run-as": {"type": "string"},
                   "on-failure": {"enum": ["ABORT", "CONTINUE", "RETRY"]},
                   "runtime-versions": {"type": "object",
                                        "additionalProperties": {"type": ["string", "number"]}},
                   "commands": _COMMANDS,
                   "finally": _COMMANDS},
}
# The CodeBuild buildspec reference, version 0.2
# (docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html).
BUILDSPEC_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["version", "phases"],
    "properties": {
        "version": {"const": 0.2},
        "run-as": {"type": "string"},
        "env": {"type": "object", "additionalProperties": False, "properties": {
            "shell": {"enum": ["bash", "/bin/sh", "sh", "powershell.exe", "cmd.exe"]},
            "variables": {"type": "object", "additionalProperties": {"type": "string"}},
            "parameter-store": {"type": "object", "additionalProperties": {"type": "string"}},
            "secrets-manager": {"type": "object", "additionalProperties": {"type": "string"}},
            "exported-variables": {"type": "array", "items": {"type": "string"}},
            "git-credential-helper": {"enum": ["yes", "no"]}}},
        "proxy": {"type": "object"},
        "batch": {"type": "object"},
        "phases": {"type": "object", "additionalProperties": False, "minProperties": 1,
                   "properties": dict.fromkeys(("install", "pre_build", "build",
                                                "post_build"), _PHASE)},
        "reports": {"type": "object"},
        "artifacts": {"type": "object", "additionalProperties": False, "required": ["files"],
                      "properties": {"files": _COMMANDS, "name": {"type": "string"},
                                     "discard-paths": {"enum": ["yes", "no"]},
                                     "base-directory": {"type": "string"},
                                     "exclude-paths": _COMMANDS,
                                     "enable-symlinks": {"enum": ["yes", "no"]},
                                     "s3-prefix": {"type": "string"},
                                     "secondary-artifacts": {"type": "object"}}},
        "cache": {"type": "object"},
    },
}


def test_there_is_a_buildspec_per_step():
    assert [p.name for p in BUILDSPECS] == ["linux.yml", "promote.yml", "publish.yml",
                                            "windows.yml"]


@pytest.mark.parametrize("path", BUILDSPECS, ids=lambda p: p.name)
def test_each_buildspec_matches_the_buildspec_schema(path):
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.validate(spec, BUILDSPEC_SCHEMA)
    # yes/no are strings in a buildspec, never YAML booleans
    assert "discard-paths" not in spec.get("artifacts", {}) or \
        isinstance(spec["artifacts"]["discard-paths"], str)


def test_the_schema_catches_what_codebuild_would_refuse():
    good = yaml.safe_load((ROOT / "cloud" / "buildspecs" / "publish.yml").read_text())
    for broken in ({**good, "version": 0.1}, {**good, "phase": good["phases"]},
                   {**good, "phases": {"build": {"command": ["true"]}}},
                   {**good, "phases": {"build": {"commands": "true"}}},
                   {**good, "env": {"variables": {"N": 1}}},
                   {**good, "artifacts": {"discard-paths": True, "files": ["*"]}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, BUILDSPEC_SCHEMA)


def test_the_build_hosts_run_the_checks_tests_build_and_smoke_test():
    linux = (ROOT / "cloud" / "buildspecs" / "linux.yml").read_text()
    assert "./.ci/run" in linux  # CI's own run: checks, tests, rules, build, smoke, tarball
    ci = (ROOT / ".ci" / "run").read_text()
    for step in ("ruff", "mypy", "lint-imports", "./scripts/test.sh", "scripts/build.sh",
                 "packaging/artefacts.py", "rules check"):
        assert step in ci
    windows = (ROOT / "cloud" / "buildspecs" / "windows.yml").read_text()
    for step in ("ruff check", "mypy", "lint-imports", "pytest", "rules check",
                 "packaging\\build.py", "packaging\\artefacts.py", "--require-hashes"):
        assert step in windows, step
    assert yaml.safe_load(windows)["env"]["shell"] == "powershell.exe"


# ------------------------------------------------------- the macOS workflow

_STEP = {"type": "object", "additionalProperties": False,
         "properties": {"name": {"type": "string"}, "id": {"type": "string"},
                        "if": {"type": "string"}, "uses": {"type": "string"},
                        "run": {"type": "string"}, "with": {"type": "object"},
                        "env": {"type": "object"}, "shell": {"type": "string"},
                        "working-directory": {"type": "string"},
                        "timeout-minutes": {"type": "number"},
                        "continue-on-error": {"type": "boolean"}},
         "oneOf": [{"required": ["uses"], "not": {"required": ["run"]}},
                   {"required": ["run"], "not": {"required": ["uses"]}}]}
# The shape of a GitHub Actions workflow (the parts this repository uses).
WORKFLOW_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["name", "on", "jobs"],
    "properties": {
        "name": {"type": "string"}, "on": {"type": "object"},
        "permissions": {"type": "object",
                        "additionalProperties": {"enum": ["read", "write", "none"]}},
        "concurrency": {"type": "object"}, "env": {"type": "object"},
        "jobs": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "required": ["runs-on", "steps"], "additionalProperties": False,
            "properties": {"runs-on": {"type": "string"}, "timeout-minutes": {"type": "number"},
                           "env": {"type": "object"}, "if": {"type": "string"},
                           "needs": {}, "steps": {"type": "array", "minItems": 1,
                                                   "items": _STEP}}}},
    },
}


def _workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def test_the_macos_workflow_matches_the_workflow_shape():
    wf = _workflow()
    jsonschema.validate(wf, WORKFLOW_SCHEMA)
    job = wf["jobs"]["macos"]
    assert job["runs-on"].startswith("macos-")
    assert wf["permissions"]["id-token"] == "write"  # the AWS role through OIDC, no keys
    assert wf["on"]["push"]["branches"] == ["release"]
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    for step in ("ruff check", "mypy", "lint-imports", "pytest", "packaging/build.py",
                 "packaging/artefacts.py", "packaging/publish.py publish", "--require-hashes",
                 "notarytool", "codesign"):
        assert step in runs, step
    for s in job["steps"]:  # actions pinned to a release
        if "uses" in s:
            assert "@v" in s["uses"], s["uses"]


# -------------------------------------------------------------------- moto

# What moto's CloudFormation cannot create (it warns and skips them); their
# properties are checked by cfn-lint against AWS's own schemas above.
MOTO_SKIPS = {"AWS::CodeBuild::Project", "AWS::CodePipeline::Pipeline",
              "AWS::S3::BucketPolicy", "AWS::SNS::Subscription"}


def load_deploy():
    spec = importlib.util.spec_from_file_location("getmeds_deploy", ROOT / "cloud" / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_the_pipeline_deploys_on_moto_as_far_as_moto_goes(moto_endpoint):
    session = boto3.session.Session(region_name="us-east-1")
    secret = session.client("secretsmanager", endpoint_url=moto_endpoint).create_secret(
        Name="getmeds/release-signing-key", SecretString="(made by publish.py keygen)")["ARN"]
    params = {
        "ConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/"
                         "0f0e0d0c-0b0a-4909-8807-060504030201",
        "RepositoryId": "rivera/getmeds-desktop", "SigningKeySecretArn": secret,
        "PharmacyCidr1": "203.0.113.10/32", "ApprovalEmail": "it@rivera-pharmacy.example",
    }
    outputs = load_deploy().deploy_pipeline(session, "rivera-getmeds-releases", params,
                                            endpoint_url=moto_endpoint, delay=1,
                                            out=io.StringIO())
    cfn = session.client("cloudformation", endpoint_url=moto_endpoint)
    stack = cfn.describe_stacks(StackName="rivera-getmeds-releases")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    bucket = outputs["ReleaseBucketName"]
    s3 = session.client("s3", endpoint_url=moto_endpoint)
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert outputs["ManifestUrl"].endswith("/releases/latest.json")
    iam = session.client("iam", endpoint_url=moto_endpoint)
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert any("PublishRole" in name for name in roles)
    assert any("BuildRole" in name for name in roles)
    made = {r["ResourceType"] for r in cfn.list_stack_resources(
        StackName="rivera-getmeds-releases")["StackResourceSummaries"]} - {""}
    assert made == {"AWS::IAM::Role", "AWS::Logs::LogGroup", "AWS::S3::Bucket",
                    "AWS::SNS::Topic"}
    # everything else in the template is what moto cannot make (cloud/README.md says so)
    from cfnlint.decode import decode

    template, _ = decode(str(PIPELINE))
    assert {r["Type"] for r in template["Resources"].values()} - made == MOTO_SKIPS
