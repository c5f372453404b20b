#!/usr/bin/env bash
# Set up (idempotently) and run the whole test suite inside the loopback-only network namespace.
# Extra arguments go to pytest. pytest's exit 5 ("no tests collected") is a failure here, never success.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/ruff check . || { echo "[test] ruff found problems" >&2; exit 1; }
scripts/loopback-only .venv/bin/python -m pytest --durations=25 "$@"  # where the time goes, in CI's output too
rc=$?
if [ "$rc" = 5 ]; then
    echo "[test] pytest collected no tests: treating as failure" >&2
    exit 1
fi
exit "$rc"
