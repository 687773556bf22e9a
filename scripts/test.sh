#!/usr/bin/env bash
# Run the whole test suite (sets everything up first). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
missing_qt_libs
ensure_venv
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
