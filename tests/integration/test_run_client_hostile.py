"""Three `psyche run-client` processes finish a run on a localnet that behaves like a hostile public cluster:
20% of accepted transactions silently never land, RPC calls beyond a rate limit get HTTP 429 with
Retry-After, and every reply is 200 ms late. The weights still come out bit-identical and every client's
points are exact: the sender resends and re-signs without landing anything twice, the pool waits out the
429s, and reads never go behind the client's own writes. Run inside scripts/loopback-only (iroh)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from run_client_helpers import expected_points, finished, logs, points, pubkey_of, write_run_toml

from devtools.local_cluster import LocalCluster

pytestmark = pytest.mark.slow

# Calls/s for the whole node. At 5 the run takes ~60 s, each client waiting out 7-16 429s; at 3, ~70 s; at 2
# witnesses land seconds late, the run needs a second epoch (~170 s); at 1 witnesses miss their rounds
# (StaleRound) and the run does not finish in 150 s, though no client fails.
RATE_LIMIT = int(os.environ.get("PSYCHE_HOSTILE_RATE_LIMIT", "5"))
HOSTILE = ("--drop-tx-rate", "0.2", "--rate-limit", str(RATE_LIMIT), "--latency", "200")


def test_three_clients_finish_on_a_hostile_cluster(tmp_path: Path) -> None:
    toml = write_run_toml(tmp_path, epoch_time=30, total_steps=6, init_min=3, min_clients=3, round_time=8)
    with LocalCluster(tmp_path / "net", localnet_args=HOSTILE) as net:
        t0 = time.monotonic()
        net.create_run("e2e-hostile", toml, net.wallet("owner"))
        clients = [net.start_client("c0", "e2e-hostile", None, "--with-compute-unit-price", "auto"),
                   net.start_client("c1", "e2e-hostile", None, "--with-compute-unit-price", "1000"),
                   net.start_client("c2", "e2e-hostile")]
        codes = net.wait_all(clients, 150)
        elapsed = time.monotonic() - t0
        assert codes == [0, 0, 0], logs(clients)
        digests = {finished(c)["weights_sha256"] for c in clients}
        assert len(digests) == 1, f"weights differ: {digests}\n{logs(clients)}"
        status = net.status("e2e-hostile")
        assert status["phase"] == "Finished" and status["step"] >= 6, status
        pts = points(net, "e2e-hostile")
        for c in clients:
            earned, penalised, _ = pts[pubkey_of(c.wallet)]
            assert (earned, penalised) == (expected_points(c, 900), 0), (c.name, earned, logs([c]))
        landing = {c.name: {k: v for k, v in finished(c)["landing"].items() if k != "history"} for c in clients}
        assert all(v["landed"] > 0 and v["sent"] >= v["landed"] for v in landing.values()), landing
        print(f"hostile e2e: {elapsed:.1f} s with rate limit {RATE_LIMIT}/s; {landing}")
