"""Deploy GetMeds' AWS side: package the backup function, create or update the
CloudFormation stack, wait for it, print its outputs.

    python cloud/deploy.py --stack-name rivera-getmeds --region us-east-1 \\
        --param VpcId=vpc-0abc --param DatabaseSubnetIds=subnet-1,subnet-2 \\
        --param LambdaSubnetIds=subnet-3,subnet-4 --param PharmacyCidr1=203.0.113.10/32 \\
        --param PgDumpLayerArn=arn:aws:lambda:us-east-1:123456789012:layer:pg15:1 \\
        --param AlertEmail=it@rivera-pharmacy.example

``--pipeline`` deploys the release pipeline (cloud/pipeline.yaml) instead::

    python cloud/deploy.py --pipeline --stack-name rivera-getmeds-releases \\
        --param ConnectionArn=arn:aws:codeconnections:us-east-1:123456789012:connection/... \\
        --param RepositoryId=rivera/getmeds-desktop --param PharmacyCidr1=203.0.113.10/32 \\
        --param SigningKeySecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:...

``--endpoint-url`` points every AWS client at another endpoint (a local test
server). Needs boto3 only; run it from a checkout of this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError, WaiterError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPLATE = HERE / "template.yaml"
PIPELINE = HERE / "pipeline.yaml"  # the release pipeline (--pipeline)
# The function: the handler, and the backup code it shares with getmeds-admin.
FILES = {
    "handler.py": HERE / "backup_lambda" / "handler.py",
    "getmeds_desktop/__init__.py": ROOT / "getmeds_desktop" / "__init__.py",
    "getmeds_desktop/backup/__init__.py": ROOT / "getmeds_desktop" / "backup" / "__init__.py",
    "getmeds_desktop/backup/core.py": ROOT / "getmeds_desktop" / "backup" / "core.py",
}


class DeployError(Exception):
    pass


def build_zip() -> bytes:
    """The function's code, byte-for-byte reproducible (fixed timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, path in sorted(FILES.items()):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def _parse_params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DeployError(f"--param {pair!r}: use Name=Value")
        out[key] = value
    return out


def _stack_exists(cfn: Any, name: str) -> bool:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    return bool(stacks) and stacks[0]["StackStatus"] != "DELETE_COMPLETE"


def _failure_reason(cfn: Any, name: str) -> str:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return "see the stack's events in the CloudFormation console"
    failed = [e for e in events if e.get("ResourceStatus", "").endswith("_FAILED")]
    if failed:
        e = failed[-1]
        return f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', 'failed')}"
    return "see the stack's events in the CloudFormation console"


def deploy(session: Any, stack_name: str, params: dict[str, str], *,
           code_bucket: str | None = None, endpoint_url: str | None = None,
           delay: int = 15, out: Any = sys.stdout) -> dict[str, str]:
    cfn = session.client("cloudformation", endpoint_url=endpoint_url)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    code = build_zip()
    bucket = code_bucket or f"{stack_name}-deploy-artifacts".lower()
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        region = session.region_name or "us-east-1"
        kwargs = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **kwargs)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
    key = f"backup-function/{hashlib.sha256(code).hexdigest()[:16]}.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=code, ServerSideEncryption="AES256")
    print(f"Uploaded the backup function to s3://{bucket}/{key} ({len(code):,} bytes).",
          file=out)

    values = {**params, "CodeBucket": bucket, "CodeKey": key}
    return _create_or_update(cfn, stack_name, TEMPLATE, values, delay=delay, out=out)


def deploy_pipeline(session: Any, stack_name: str, params: dict[str, str], *,
                    endpoint_url: str | None = None, delay: int = 15,
                    out: Any = sys.stdout) -> dict[str, str]:
    """The release pipeline's stack (cloud/pipeline.yaml): nothing to package."""
    cfn = session.client("cloudformation", endpoint_url=endpoint_url)
    return _create_or_update(cfn, stack_name, PIPELINE, params, delay=delay, out=out)


def _create_or_update(cfn: Any, stack_name: str, template: Path, values: dict[str, str], *,
                      delay: int, out: Any) -> dict[str, str]:
    args = dict(StackName=stack_name, TemplateBody=template.read_text(encoding="utf-8"),
                Parameters=[{"ParameterKey": k, "ParameterValue": v}
                            for k, v in sorted(values.items())],
                Capabilities=["CAPABILITY_IAM"],
                Tags=[{"Key": "Application", "Value": "GetMeds"}])
    if _stack_exists(cfn, stack_name):
        try:
            cfn.update_stack(**args)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise DeployError(f"CloudFormation refused the update: {exc}") from None
            print(f"Stack {stack_name} is already up to date.", file=out)
        else:
            print(f"Updating stack {stack_name}…", file=out)
            _wait(cfn, "stack_update_complete", stack_name, delay)
    else:
        try:
            cfn.create_stack(**args, OnFailure="ROLLBACK")
        except ClientError as exc:
            raise DeployError(f"CloudFormation refused the stack: {exc}") from None
        print(f"Creating stack {stack_name}…", file=out)
        _wait(cfn, "stack_create_complete", stack_name, delay)
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    print(f"Stack {stack_name}: {stack['StackStatus']}", file=out)
    for k in sorted(outputs):
        print(f"  {k:<20} {outputs[k]}", file=out)
    return outputs


def _wait(cfn: Any, waiter: str, name: str, delay: int) -> None:
    try:
        cfn.get_waiter(waiter).wait(StackName=name,
                                    WaiterConfig={"Delay": delay, "MaxAttempts": 240})
    except WaiterError:
        raise DeployError(f"The stack {name} did not complete: "
                          f"{_failure_reason(cfn, name)}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="deploy.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack-name", required=True)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a template parameter (repeat)")
    p.add_argument("--code-bucket", help="bucket for the function's code "
                                         "(default: <stack>-deploy-artifacts, created)")
    p.add_argument("--region")
    p.add_argument("--profile")
    p.add_argument("--endpoint-url", help="another AWS endpoint (a local test server)")
    p.add_argument("--delay", type=int, default=15, help="seconds between status checks")
    p.add_argument("--pipeline", action="store_true",
                   help="deploy the release pipeline (cloud/pipeline.yaml) instead")
    args = p.parse_args(argv)
    try:
        session = boto3.session.Session(region_name=args.region, profile_name=args.profile)
        if args.pipeline:
            deploy_pipeline(session, args.stack_name, _parse_params(args.param),
                            endpoint_url=args.endpoint_url, delay=args.delay)
        else:
            deploy(session, args.stack_name, _parse_params(args.param),
                   code_bucket=args.code_bucket, endpoint_url=args.endpoint_url,
                   delay=args.delay)
    except DeployError as exc:
        print(f"deploy.py: error: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"deploy.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
