#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: lint, types, unit, interop and browser tests.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/sip -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/services.sh
.venv/bin/ruff check cti_server adapters tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
