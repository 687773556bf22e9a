"""The scheduled backup: EventBridge runs this Lambda (daily by default).

It reads the backup login from Secrets Manager, dumps the database with
pg_dump (from the Lambda layer: see cloud/README.md) and streams the dump to
S3 with its checksum and row counts (getmeds_desktop/backup/core.py, packaged
next to this file by cloud/deploy.py). Any failure is published to the SNS
topic with the reason, and the function then fails, which the CloudWatch alarm
sees too.

Environment: DB_SECRET_ARN, BACKUP_BUCKET, BACKUP_PREFIX (default "backups"),
ALERT_TOPIC_ARN; AWS_ENDPOINT_URL for a local test endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from typing import Any

import boto3

from getmeds_desktop.backup import core

log = logging.getLogger()
log.setLevel(logging.INFO)


def _clients() -> tuple[Any, Any, Any]:
    session = boto3.session.Session()
    return session.client("s3"), session.client("secretsmanager"), session.client("sns")


def handler(event: dict | None = None, context: Any = None) -> dict:
    s3, secrets, sns = _clients()
    bucket = os.environ["BACKUP_BUCKET"]
    prefix = os.environ.get("BACKUP_PREFIX", "backups")
    topic = os.environ["ALERT_TOPIC_ARN"]
    database = "the GetMeds database"
    try:
        secret = json.loads(secrets.get_secret_value(
            SecretId=os.environ["DB_SECRET_ARN"])["SecretString"])
        params = core.params_from_secret(secret)
        database = f"{params['dbname']} at {params['host']}"
        info = core.run_backup(params, s3, bucket, prefix=prefix)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, core.BackupError) else \
            f"{type(exc).__name__}: {exc}"
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        log.error("backup failed: %s", reason)
        sns.publish(TopicArn=topic, Subject="GetMeds backup failed",
                    Message=f"The backup of {database} failed at {when}.\n\nReason: {reason}\n\n"
                            f"Bucket: {bucket}. The previous backups are untouched.")
        raise
    result = {"key": info.key, "bucket": bucket, "size": info.size, "sha256": info.sha256,
              "schema_revision": info.schema_revision, "row_counts": info.row_counts}
    log.info("backup written: %s", json.dumps(result))
    return result
