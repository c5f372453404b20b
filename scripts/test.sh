#!/usr/bin/env bash
# Set up (idempotently) and run the test suite inside the loopback-only network namespace: ruff, then pytest
# with the 25 slowest tests listed at the end (CI's output shows where the time goes).
#   scripts/test.sh                 the whole suite (what CI runs)
#   scripts/test.sh --fast          the daily loop: tests/unit + tests/program, not `slow` (under 2 min, 2 cores)
#   scripts/test.sh [--fast] ARGS   extra arguments go to pytest (paths, -k, -m, -x ...)
# Tests run on PSYCHE_TEST_WORKERS pytest-xdist workers (default 4, on CI's 2 cores: the long tests mostly
# wait on rounds and timers, load ~1 with 2 workers; 0 = in this process), handed out one or two at a time
# (--maxschedchunk 1) in the order tests/conftest.py sorts them: the longest first, by tests/durations.json
# (PSYCHE_TEST_DURATIONS=write bash scripts/test.sh merges what a run measured into it). A short fresh
# --basetemp: xdist's popen-gwN/ folders in tmp paths would push the checkpoint references tests build past
# the chain's 127 bytes.
# pytest's exit 5 ("no tests collected") is a failure here, never success.
set -uo pipefail
cd "$(dirname "$0")/.."
select=()
if [ "${1:-}" = "--fast" ]; then
    shift
    select=(tests/unit tests/program -m "not slow")
fi
bash scripts/setup.sh || exit 1
.venv/bin/ruff check . || { echo "[test] ruff found problems" >&2; exit 1; }
base=$(mktemp -d /tmp/pt.XXXX)
scripts/loopback-only .venv/bin/python -m pytest --durations=25 -n "${PSYCHE_TEST_WORKERS:-4}" --maxschedchunk 1 \
    --basetemp="$base" "${select[@]}" "$@"
rc=$?
if [ "$rc" = 0 ]; then
    rm -rf "$base"
else  # a failed test's logs (clusters, clients, chaos runs) stay for a look
    echo "[test] kept the tests' temporary files: $base" >&2
fi
if [ "$rc" = 5 ]; then
    echo "[test] pytest collected no tests: treating as failure" >&2
    exit 1
fi
exit "$rc"
