"""Backups: PostgreSQL to S3 (core, no Qt, no SQLAlchemy) and the embedded
database's daily local copies (local)."""
