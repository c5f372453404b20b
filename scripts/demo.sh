#!/usr/bin/env bash
# The main demo, set up idempotently. Today it shows the foundation every later part runs on: the on-chain
# programs rebuilt from C by our own SBF linker (byte-identical to the committed .so), deployed through
# the real upgradeable loader in LiteSVM, with their compute units printed, and the program tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== rebuild every program from source and compare with the committed .so files"
.venv/bin/psyche program build --check
echo "== deploy hello through the loader and run each instruction"
.venv/bin/python -m bench.hello_cu
echo "== validator-grade deploy check (solders 0.29, DeployWithMaxDataLen)"
.venv-deploycheck/bin/python programs/deploycheck.py programs/deploy/*.so | cut -c1-160
echo "== program tests"
scripts/loopback-only .venv/bin/python -m pytest -q tests/test_sbf_linker.py tests/test_hello_program.py \
    tests/test_program_build.py tests/test_deploycheck.py
