#!/usr/bin/env bash
# Set up (idempotent), then lint and run the test suite; extra arguments go to pytest (e.g. -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py="${BLOCKCOPY_VENV:-.venv}/bin/python"
"$py" -m ruff check .
exec "$py" -m pytest "$@"
