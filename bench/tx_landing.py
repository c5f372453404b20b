"""How hard it is to land the coordinator's transactions: three real `psyche run-client` processes train a
short run on a normal localnet and on a hostile one (20% of accepted transactions dropped, a rate limit,
200 ms latency); from every landed witness / tick / join their senders recorded how many times it was sent
(resends and re-signs included) and the seconds from signing to confirmed.

    scripts/loopback-only .venv/bin/python -m bench.tx_landing [--rate-limit 10] [--latency 200] [--drop 0.2]

(loopback-only because the clients start iroh endpoints.)"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from run_client_helpers import finished, logs, write_run_toml  # noqa: E402

from devtools.local_cluster import LocalCluster  # noqa: E402

KINDS = {"witness": ("witness", "warmup_witness"), "tick": ("tick",), "join": ("join_run",)}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def one_cluster(workdir: Path, localnet_args: tuple[str, ...], steps: int) -> tuple[list[dict], float, dict]:
    toml = write_run_toml(workdir, epoch_time=30, total_steps=steps, init_min=3, min_clients=3, round_time=8)
    with LocalCluster(workdir / "net", localnet_args=localnet_args) as net:
        t0 = time.monotonic()
        net.create_run("landing", toml, net.wallet("owner"))
        clients = [net.start_client(f"c{i}", "landing") for i in range(3)]
        codes = net.wait_all(clients, 300)
        if codes != [0, 0, 0]:
            raise SystemExit(f"clients failed ({codes}):\n{logs(clients)}")
        landing = [finished(c)["landing"] for c in clients]
        totals = {k: sum(x[k] for x in landing) for k in ("sent", "landed", "resent", "resigned", "throttled")}
        return [row for x in landing for row in x["history"]], time.monotonic() - t0, totals


def summarize(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for kind, labels in KINDS.items():
        mine = [r for r in rows if r["label"] in labels]
        if mine:
            secs = [r["seconds"] for r in mine]
            out[kind] = {"landed": len(mine), "sent_per_landed": sum(r["sent"] for r in mine) / len(mine),
                         "median_s": statistics.median(secs), "p99_s": p99(secs),
                         "max_sent": max(r["sent"] for r in mine)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate-limit", type=int, default=10, help="hostile: RPC calls per second for the node")
    ap.add_argument("--latency", type=int, default=200, help="hostile: ms added to every reply")
    ap.add_argument("--drop", type=float, default=0.2, help="hostile: share of accepted transactions dropped")
    ap.add_argument("--steps", type=int, default=8, help="training steps of each run")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    hostile = ("--drop-tx-rate", str(a.drop), "--rate-limit", str(a.rate_limit), "--latency", str(a.latency))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in (("normal", ()), ("hostile", hostile)):
            rows, secs, totals = one_cluster(Path(tmp) / name, args, a.steps)
            results[name] = {"kinds": summarize(rows), "run_s": round(secs, 1), "totals": totals}
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"hostile = {a.drop:.0%} dropped, rate limit {a.rate_limit}/s, latency {a.latency} ms; 3 run-clients, "
          f"{a.steps} steps")
    print(f"{'cluster':<9}{'kind':<9}{'landed':>7}{'sent/landed':>13}{'max sent':>10}{'median s':>10}{'p99 s':>8}")
    for name, r in results.items():
        for kind, k in r["kinds"].items():
            print(f"{name:<9}{kind:<9}{k['landed']:>7}{k['sent_per_landed']:>13.2f}{k['max_sent']:>10}"
                  f"{k['median_s']:>10.3f}{k['p99_s']:>8.3f}")
        print(f"{name:<9}run {r['run_s']} s; totals {r['totals']}")


if __name__ == "__main__":
    main()
