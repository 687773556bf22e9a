#!/usr/bin/env bash
# Start GetMeds Desktop on a throwaway demo pharmacy (sets everything up first).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
missing_qt_libs
ensure_venv
exec "$VENV/bin/getmeds" --demo "$@"
