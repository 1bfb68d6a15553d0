#!/usr/bin/env bash
# Set up (idempotent), then run the evaluation job; extra arguments go to `python -m jobs.evaluate`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${BLOCKCOPY_VENV:-.venv}/bin/python" -m jobs.evaluate "$@"
