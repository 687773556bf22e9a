#!/usr/bin/env bash
# Build the bundle IT rolls out (packaging/build.py), smoke-tested. Arguments go to build.py.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
missing_qt_libs
ensure_venv
cd "$ROOT"
exec "$VENV/bin/python" packaging/build.py "$@"
