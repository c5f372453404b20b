"""How a round's cost grows with the number of clients (issue 24): for each N, a real localnet and N
`RunClient`s in ONE process (devtools.swarm) with simulated training (a fixed delay and a seeded DisTrO
result that goes through the whole protocol), so the cost measured is the protocol's, not torch's.

Per N it reports: the median round time; each client's CPU per round by phase (exact per client:
time.thread_time around the phase's own coroutine steps and its worker-thread work, see client/cpu_meter.py),
the event-loop CPU each client costs in all (every loop callback charged to the client whose context it runs
in) and by task, the whole process's CPU per client per round (all threads, iroh's included, divided by N);
bytes each client sends and receives per round; the localnet's transactions per second and CPU (from
/proc/<pid>/stat); witness landing latency (send to confirmed); resident memory per client. At the end of each
run it checks that every client finished with bit-identical weights and that the chain's points are exactly
what the protocol pays. Each N runs in its own process (a crash or OOM at one N does not lose the others).

    PYTHONPATH=$PWD scripts/loopback-only .venv/bin/python -m bench.scale --n 4,16,64,128 [--simulate 0.5]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PHASES = ("train", "encode", "gather", "validate", "decode", "apply", "witness")


def one(n: int, simulate: float, steps: int, workdir: Path, timeout: float, processes: int = 1) -> dict[str, Any]:
    from devtools.swarm import Swarm, SwarmConfig, round_stats

    async def go() -> dict[str, Any]:
        swarm = Swarm(workdir, SwarmConfig(n, simulate=simulate, total_steps=steps), processes=processes)
        t0 = time.monotonic()
        try:
            await asyncio.to_thread(swarm.start_chain)
            setup_s = time.monotonic() - t0
            await swarm.start_shards(timeout)
            await swarm.start_clients()
            codes = await swarm.wait(timeout)
            swarm.dump(workdir / "events.log")
            out = round_stats(swarm)
            out.update(setup_s=setup_s, total_s=time.monotonic() - t0,
                       codes={str(c): codes.count(c) for c in set(codes)}, problems=swarm.check(),
                       load=os.getloadavg())
            return out
        finally:
            await swarm.close()

    return asyncio.run(go())


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{1000 * v:.1f}"


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def report(rows: list[dict[str, Any]]) -> None:
    print("\nround time and chain (median over the steady rounds; the first two rounds are left out); clients in"
          f" {rows[0].get('processes', 1) if rows else 1} process(es)")
    print(f"{'N':>4} {'rounds':>6} {'round s':>8} {'work s':>7} {'gather s':>8} {'witness land s':>15}"
          f" {'localnet tx/s':>13} {'localnet cores':>14} {'process cores':>13} {'RSS MB/client':>13}"
          f" {'sent B/round':>12} {'recv B/round':>12} {'gossip in/dup':>13}  check")
    for r in rows:
        if "error" in r:
            print(f"{r['n']:>4} failed: {r['error']}")
            continue
        land = f"{_f(r.get('witness_land_s'))}/{_f(r.get('witness_land_max_s'))}"
        check = "ok" if not r["problems"] and set(r["codes"]) == {"0"} else f"{r['codes']} {r['problems'][:3]}"
        print(f"{r['n']:>4} {r['rounds']:>6} {_f(r['round_s']):>8} {_f(r.get('work_s')):>7}"
              f" {_f(r.get('gather_s'), '.3f'):>8} {land:>15} {_f(r.get('localnet_tps'), '.1f'):>13}"
              f" {_f(r.get('localnet_cores')):>14} {_f(r.get('process_cores')):>13}"
              f" {_f(r.get('rss_mb_per_client'), '.1f'):>13} {_f(r.get('bytes_sent'), '.0f'):>12}"
              f" {_f(r.get('bytes_received'), '.0f'):>12}"
              f" {_f(r.get('gossip_in'), '.0f') + '/' + _f(r.get('gossip_duplicates'), '.0f'):>13}  {check}")
    print("\nCPU ms per client per round: phases (exact per client; gather includes validate and decode),"
          " the client's event-loop total, and the process (all threads) / N")
    print(f"{'N':>4} " + " ".join(f"{p:>8}" for p in PHASES) + f" {'loop':>8} {'loop max':>8} {'process/N':>9}"
          f" {'iroh/N':>7} {'loop lag s':>10} {'load':>5}")
    for r in rows:
        if "error" in r:
            continue
        threads = r.get("threads_cpu_per_client_round_s") or {}
        iroh = sum(v for k, v in threads.items() if k.startswith("tokio") or k.startswith("async-compat"))
        print(f"{r['n']:>4} " + " ".join(f"{_ms(r['cpu_phase_s'].get(p)):>8}" for p in PHASES)
              + f" {_ms(r.get('loop_cpu_per_client_round_s')):>8} {_ms(r.get('loop_cpu_max_client_round_s')):>8}"
              f" {_ms(r.get('process_cpu_per_client_round_s')):>9} {_ms(iroh):>7}"
              f" {_f(r.get('loop_lag_s'), '.3f') + '/' + _f(r.get('loop_lag_max_s')):>10} {r['load'][0]:>5.1f}")
    print("\nwhere each client's event-loop CPU goes, by task (ms per client per round, largest first)")
    for r in rows:
        tasks = r.get("loop_cpu_by_task_per_client_round_s") or {}
        print(f"{r['n']:>4}: " + ", ".join(f"{k} {1000 * v:.1f}" for k, v in list(tasks.items())[:8]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="4,16,64,128", help="comma-separated client counts (256: if memory allows)")
    ap.add_argument("--simulate", type=float, default=0.5, help="seconds of simulated training per round")
    ap.add_argument("--steps", type=int, default=10, help="total steps of the run (one epoch)")
    ap.add_argument("--timeout", type=float, default=0, help="seconds per N (0: scaled with N)")
    ap.add_argument("--processes", type=int, default=1, help="split each N's clients over this many processes"
                    " (1: all in one process, one event loop; more: the protocol's cost without one loop's limit)")
    ap.add_argument("--json", type=Path, default=None, help="also write every N's figures here")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child: one N, JSON on stdout
    ap.add_argument("--dir", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None:
        timeout = a.timeout or _timeout(a.one, a.steps)
        result = one(a.one, a.simulate, a.steps, a.dir, timeout, a.processes)
        print("RESULT " + json.dumps(result, default=str), flush=True)
        return
    rows: list[dict[str, Any]] = []
    base = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    for n in [int(x) for x in a.n.split(",") if x.strip()]:
        per_client = max((r.get("rss_mb_per_client") or 0) for r in rows) if rows else 0
        avail = _mem_available_mb()
        if per_client and n * per_client * 1.5 + 500 > avail:
            rows.append({"n": n, "error": f"skipped: ~{n * per_client:.0f} MB needed, {avail:.0f} MB available"})
            continue
        timeout = a.timeout or _timeout(n, a.steps)
        print(f"N={n}: running (timeout {timeout:.0f} s, events under {base / str(n)}) ...", flush=True)
        cmd = [sys.executable, "-m", "bench.scale", "--one", str(n), "--simulate", str(a.simulate), "--steps",
               str(a.steps), "--timeout", str(timeout), "--dir", str(base / str(n)), "--processes", str(a.processes)]
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout + 300)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            rows.append(json.loads(lines[-1][7:]) if lines else
                        {"n": n, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-600:]}"})
        except subprocess.TimeoutExpired:
            rows.append({"n": n, "error": "timed out"})
    report(rows)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1, default=str))


def _timeout(n: int, steps: int) -> float:
    """Seconds one N may take: setup, a warmup and `steps` rounds, each at most the swarm's round timeout."""
    from devtools.swarm import SwarmConfig

    return 300 + (steps + 2) * (SwarmConfig.round_timeout(n) + 2)


def _mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


if __name__ == "__main__":
    main()
