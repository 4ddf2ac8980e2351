#!/usr/bin/env bash
# Sets up everything the server and its tests need on a fresh Debian machine; safe to run again.
#   scripts/setup.sh          the server: .venv with cti-server installed
#   scripts/setup.sh --test   also the test peers: sipp, baresip, chromium (Debian), pjsua2, pyVoIP,
#                             playwright (PyPI; it drives Debian's chromium, never downloads a browser)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
fi
if [ "$want_test" = 1 ]; then
    .venv/bin/pip install -q -e '.[dev,interop]'
else
    .venv/bin/pip install -q -e .
fi

if [ "$want_test" = 1 ]; then
    missing=()
    command -v sipp >/dev/null || missing+=(sip-tester)
    command -v baresip >/dev/null || missing+=(baresip)
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        else
            echo "setup: please install ${missing[*]} (Debian packages); their tests will say they are skipped" >&2
        fi
    fi
fi
