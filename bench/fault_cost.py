"""What one fault costs a training run: the same run is played without faults (the baseline) and once per
fault type, each on a fresh localnet with 3 `psyche run-client` processes, all in this invocation, and the
runs are compared. Goal: at most one round lost per fault.

    scripts/loopback-only .venv/bin/python -m bench.fault_cost [--faults kill,stop,leave,duplicate] [--load]

The run: devtools.chaos_config.ChaosConfig (a tiny Llama, ~12 one-second rounds an epoch, 30 steps = 2.5
epochs, a round times out after 8 s, 2 clients suffice); a run is cut off 100 s after it was resumed.
The fault hits client c0 at round 4 of epoch 1:
  kill       SIGKILL (it stays dead)
  stop       SIGSTOP, SIGCONT 12 s later (longer than any round: the timeout is 8 s)
  leave      SIGINT: the client withdraws from the run and exits 0
  duplicate  a second `run-client` on c0's wallet while c0 runs
  localnet   the RPC node (the localnet) stops for 5 s and comes back on the same ledger
Figures (terms defined in devtools/chaos_analysis.py):
  rounds lost   lost rounds of the faulted run (ran to the round timeout, or results applied by no honest
                client) minus those of the baseline;
  seconds lost  the faulted run's wall time from its first round to the chain's Finished, minus the
                baseline's ("> N" when it was cut off); "as rounds" divides it by the baseline's median
                round.
A full run (baseline + 4 faults) takes 6-10 minutes on 2 cores. --load adds a spinning process per core.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from devtools.chaos import ChaosRun, Fault, Load, local_cluster
from devtools.chaos_analysis import Analysis, analyse, report
from devtools.chaos_config import ChaosConfig, prepare_data

CONFIG = ChaosConfig(epoch_time=11, total_steps=30, round_time=8, warmup=8, init_min=2, min_clients=2)
AT = (1, 4)
FAULTS = {"kill": Fault("kill", "c0", AT), "stop": Fault("stop", "c0", AT, hold_s=12.0),
          "leave": Fault("leave", "c0", AT), "duplicate": Fault("duplicate", "c0", AT),
          "localnet": Fault("localnet", None, AT, hold_s=5.0)}
RUN_TIMEOUT_S = 100.0  # ~2x the baseline: a run that takes longer is cut off and reported as not finished


def play(workdir: Path, run_id: str, faults: list[Fault], load: bool) -> tuple[Analysis, float | None]:
    """One run; its analysis and the seconds from its first round to the chain's Finished (None: it did not
    finish within RUN_TIMEOUT_S)."""
    with local_cluster(workdir / "net") as net:
        owner = net.wallet("owner")
        net.create_run(run_id, CONFIG.write(workdir, prepare_data()), owner, "--paused")
        run = ChaosRun(net, run_id, ["c0", "c1", "c2"], faults, owner)
        run.start()
        if load:
            with Load():
                run.execute(timeout=RUN_TIMEOUT_S, grace=20.0)
        else:
            run.execute(timeout=RUN_TIMEOUT_S, grace=20.0)
    a = analyse(run, CONFIG)
    (workdir / "chaos.txt").write_text(report(a))
    done = next((s.t for s in run.watch.samples if s.phase == "Finished"), None)
    return a, None if done is None or run.first_round is None else done - run.first_round


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, from {','.join(FAULTS)}")
    ap.add_argument("--load", action="store_true", help="a spinning process per core during every run")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs' logs and analyses in this folder")
    a = ap.parse_args()
    chosen = [f.strip() for f in a.faults.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FAULTS]
    if unknown:
        raise SystemExit(f"unknown fault(s) {unknown}: choose from {','.join(FAULTS)}")
    from devtools.netns import reexec_in_loopback_namespace

    reexec_in_loopback_namespace("bench.fault_cost")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = a.keep or Path(tmp)
        results: dict[str, tuple[Analysis, float | None] | str] = {}
        for name in ["baseline", *chosen]:
            try:
                results[name] = play(root / name, f"cost-{name}", [FAULTS[name]] if name in FAULTS else [], a.load)
            except RuntimeError as e:  # e.g. a localnet that did not come up on a machine busy with other work
                results[name] = f"run failed: {str(e)[:200]}"
            print(f"  {name}: done ({time.monotonic() - t0:.0f} s so far)", flush=True)
    print_table(results, a.load)


def print_table(results: dict[str, tuple[Analysis, float | None] | str], load: bool) -> None:
    if isinstance(results["baseline"], str):
        raise SystemExit(f"baseline: {results['baseline']}: nothing to compare with")
    base, base_s = results["baseline"]
    base_lost = sum(r.lost for r in base.rounds)
    median = base.median_round_s or 1.0
    print(f"\n3 clients, {CONFIG.total_steps} steps (~12 rounds an epoch), round timeout {CONFIG.round_time} s;"
          f" fault on c0 at epoch {AT[0]} round {AT[1]}; {'loaded' if load else 'quiet'} machine (2 cores)")
    print(f"baseline: {base_s or float('nan'):.1f} s from the first round to Finished, median round {median:.2f} s,"
          f" {base_lost} lost rounds\n")
    print(f"| {'fault':<9} | rounds lost | timed out | unapplied | seconds lost | as rounds | s/round before"
          f" -> after | exits | goal <= 1 round |")
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for name, result in results.items():
        if name == "baseline":
            continue
        if isinstance(result, str):
            print(f"| {name:<9} | {result} |")
            continue
        an, secs = result
        lost = sum(r.lost for r in an.rounds) - base_lost
        timed = sum(r.timed_out for r in an.rounds)
        unapplied = sum(r.unapplied for r in an.rounds)
        extra = None if secs is None or base_s is None else secs - base_s
        cost = an.costs[0] if an.costs else None
        before_after = "-" if cost is None else f"{_f(cost.before_s)} -> {_f(cost.after_s)}"
        exits = ", ".join(f"{n}={c}" for n, c in an.exits.items())
        met = secs is not None and lost <= 1
        print(f"| {name:<9} | {lost:>11} | {timed:>9} | {unapplied:>9} |"
              f" {f'>{RUN_TIMEOUT_S - (base_s or 0.0):.0f}' if extra is None else f'{extra:.1f}':>12} |"
              f" {'-' if extra is None else f'{extra / median:.1f}':>9} | {before_after} | {exits} |"
              f" {'met' if met else 'NOT met'} |")


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


if __name__ == "__main__":
    main()
