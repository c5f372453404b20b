#!/usr/bin/env bash
# Idempotent setup: Debian clang (to rebuild the on-chain programs), Debian chromium (the dashboard's
# browser test), the project venv at .venv with the
# pinned dependencies, the small deploy-check tools venv (.venv-deploycheck, solders 0.29) that runs
# the validator-grade loader deploy of every committed .so, and for the localnet compatibility suite the
# newest solana-py (.venv-rpccheck) and the JS SDKs pinned in tests/js/package-lock.json (Node + npm from
# Debian when missing). Re-running only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

if ! command -v clang >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing clang (apt) to build the on-chain programs"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null
    else
        log "clang is missing and cannot be installed here (need root + apt): program rebuild tests will skip"
    fi
fi

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing chromium (apt) for the dashboard's browser test (driven over the DevTools protocol)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        log "chromium is missing and cannot be installed here (need root + apt): the dashboard browser test will skip"
    fi
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for cand in python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            PY=$cand; break
        fi
    done
fi
[ -n "$PY" ] || { echo "[setup] Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

stamp_of() { sha256sum pyproject.toml "$0" | sha256sum | cut -c1-16; }
STAMP=$(stamp_of)

if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PY" -m venv .venv
fi
if [ "$(cat .venv/.psyche-stamp 2>/dev/null)" != "$STAMP" ]; then
    log "installing pinned dependencies into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | { grep -v 'WARNING: Location' || true; }
    echo "$STAMP" > .venv/.psyche-stamp
fi

# the commitment's hashing in C (client/training/native), against the libcrypto Python's hashlib loads: rebuilt
# when merkle.c is newer; without a compiler the Python path runs (the same bytes, ~1.5 ms a round slower)
so=client/training/native/_merkle.so
if [ ! -f "$so" ] || [ client/training/native/merkle.c -nt "$so" ]; then
    if command -v cc >/dev/null 2>&1 && cc -O2 -shared -fPIC -o "$so.tmp" client/training/native/merkle.c \
            -l:libcrypto.so.3 2>.venv/native-build.log; then
        mv "$so.tmp" "$so"
        log "built $so"
    else
        rm -f "$so.tmp"
        log "could not build $so (see .venv/native-build.log): the commitment hashes in Python"
    fi
fi

if [ ! -x .venv-deploycheck/bin/python ] || ! .venv-deploycheck/bin/python -c 'import solders' 2>/dev/null; then
    log "creating .venv-deploycheck (solders 0.29 for the validator-grade deploy check)"
    "$PY" -m venv .venv-deploycheck
    .venv-deploycheck/bin/python -m pip install -q --disable-pip-version-check 'solders==0.29.0' 2>&1 | { grep -v 'WARNING: Location' || true; }
fi
RPCCHECK_SOLANA=0.41.0
if [ ! -x .venv-rpccheck/bin/python ] || ! .venv-rpccheck/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('solana') != '$RPCCHECK_SOLANA')" 2>/dev/null; then
    log "creating .venv-rpccheck (solana-py $RPCCHECK_SOLANA, the newest release, for the localnet compatibility suite)"
    "$PY" -m venv .venv-rpccheck
    .venv-rpccheck/bin/python -m pip install -q --disable-pip-version-check "solana==$RPCCHECK_SOLANA" 2>&1 | { grep -v 'WARNING: Location' || true; }
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing nodejs + npm (apt) for the JS SDK compatibility suite"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        log "node/npm are missing and cannot be installed here (need root + apt): the JS compatibility tests will skip"
    fi
fi
if command -v npm >/dev/null 2>&1; then
    lock_stamp=$(sha256sum tests/js/package-lock.json | cut -c1-16)
    if [ "$(cat tests/js/node_modules/.psyche-stamp 2>/dev/null)" != "$lock_stamp" ]; then
        log "installing @solana/web3.js and @solana/kit (npm ci, pinned by tests/js/package-lock.json)"
        if (cd tests/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
            echo "$lock_stamp" > tests/js/node_modules/.psyche-stamp
        else
            log "npm ci failed (is the npm registry reachable?): the JS compatibility tests will skip"
        fi
    fi
fi
log "ready: .venv/bin/psyche"
