#!/usr/bin/env bash
# The main demo, set up idempotently: the on-chain programs rebuilt from C by our own SBF linker (byte-identical
# to the committed .so) and checked through the real loader; then the product itself: a localnet, a run
# created with `psyche run create` from examples/run.toml (a tiny Llama on the bundled pydoc text, 2 epochs),
# and three `psyche run-client` processes (each its own wallet and iroh node) that train it end to end and end
# with bit-identical weights, points on chain and checkpoints on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== rebuild every program from source and compare with the committed .so files"
.venv/bin/psyche program build --check
echo "== deploy through the loader and measure compute units"
.venv/bin/python -m bench.hello_cu
.venv/bin/python -m bench.program_cu --clients 4 64
echo "== validator-grade deploy check (solders 0.29, DeployWithMaxDataLen)"
.venv-deploycheck/bin/python programs/deploycheck.py programs/deploy/*.so | cut -c1-140
echo "== localnet + a run + three psyche run-client processes (loopback-only network namespace)"
scripts/loopback-only .venv/bin/python -m devtools.demo --clients 3
