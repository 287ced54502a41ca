#!/bin/sh
# ctest entry point: run_pytest.sh PYTHON TEST_FILE [pytest args...]
# Fails (rather than passing silently) when the virtual environment is missing.
python="$1"
shift
if [ ! -x "$python" ]; then
  echo "error: $python not found; create the test venv first:" >&2
  echo "  scripts/install-deps   (or: python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt)" >&2
  exit 1
fi
exec "$python" -m pytest -q -p no:cacheprovider "$@"
