#!/usr/bin/env bash
# The main demo, set up idempotently. What exists today: the on-chain programs rebuilt from C by our own
# SBF linker (byte-identical to the committed .so) and deployed through the real upgradeable loader; the
# localnet validator; and a training run driven end to end over JSON-RPC by an owner and three clients
# (join, warmup, rounds with elected witnesses, epoch end, points); then three trainer processes, each with
# its own iroh node, training one model with DisTrO over P2P and ending bit-identical. The two halves are
# not joined yet: the chain run does not train, and the P2P trainers do not read the chain.
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
echo "== localnet + a run driven by an owner and three clients over JSON-RPC"
ledger=$(mktemp -d)
scripts/loopback-only sh -c "
  .venv/bin/psyche localnet --ledger $ledger --rpc-port 18899 --quiet &
  ln=\$!
  for i in \$(seq 1 100); do
    .venv/bin/python -c 'import urllib.request,sys; urllib.request.urlopen(\"http://127.0.0.1:18899\", b\"{\\\"jsonrpc\\\":\\\"2.0\\\",\\\"id\\\":1,\\\"method\\\":\\\"getHealth\\\"}\", 2)' 2>/dev/null && break
    sleep 0.2
  done
  .venv/bin/python -m client.chain_demo --rpc http://127.0.0.1:18899 && echo '== rewards in tokens: a treasurer run, three clients claim, psyche rewards show' && .venv/bin/python -m client.treasury_demo --rpc http://127.0.0.1:18899; rc=\$?
  kill \$ln; wait \$ln 2>/dev/null; exit \$rc"
rm -rf "$ledger"
echo "== three trainer processes train one model with DisTrO over iroh (gossiped commitments, blob results)"
.venv/bin/python -m client.p2p_training_demo --trainers 3 --steps 30
