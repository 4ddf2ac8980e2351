#!/usr/bin/env bash
# Set up (if needed) and run the server on its embedded default: SIP 5060 UDP/TCP, HTTP 8080.
# Extra arguments go to `cti-server run`, e.g. scripts/serve.sh --config config/cti-server.toml
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/cti-server run "$@"
