#!/usr/bin/env bash
# Run the whole test suite (sets everything up first). Extra arguments go to pytest.
# The tests run in parallel, one worker per core and one more (they often wait on
# the database server); pass -n 0 to run them in this process, or set
# GETMEDS_TEST_WORKERS. The fast lane: ./scripts/test.sh -m "not slow".
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
missing_qt_libs
ensure_venv
cd "$ROOT"
workers=()
case " $* " in
    *" -n "*|*" -n="*|*" --numprocesses"*|*" -p no:xdist "*) ;;
    *) workers=(-n "${GETMEDS_TEST_WORKERS:-$(( $(nproc 2>/dev/null || echo 1) + 1 ))}") ;;
esac
exec "$VENV/bin/python" -m pytest "${workers[@]}" "$@"
