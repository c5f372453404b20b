"""How long `psyche` takes to answer, relative to the floor any Solana CLI in Python pays: the ratio of
`psyche --version`, `psyche balance` and `psyche run status` to `python -c "import click, solders"`
(medians of --repeat runs each, interleaved so that load on the machine hits all of them alike; goal <= 3x).

`balance` and `run status` run against a real localnet (started here, with one run created by `psyche run
create`, which is setup and not timed), so each includes one JSON-RPC round trip on 127.0.0.1, as a user sees
it. Each command runs as `python -m client.cli`, the same code as the `psyche` console script, with .pyc
caches as an installed package has them.

    .venv/bin/python -m bench.cli_startup [--repeat 9]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools.local_cluster import PSYCHE, REPO, LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from run_client_helpers import write_run_toml  # noqa: E402

RUN = "bench-cli"
GOAL = 3.0


# Bytecode caches are written (the warm-up run writes them), as an installed package has them: with
# PYTHONDONTWRITEBYTECODE set, every run would compile the project's modules from source (~60 ms here).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str]) -> float:
    """Seconds from spawn to exit; a command that fails is an error here (it would time the error path)."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=ENV, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=9, help="runs of each command (the median is reported)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp)) as net:
        owner = net.wallet("owner")
        net.create_run(RUN, write_run_toml(net.dir / "cfg"), owner, "--paused")
        commands = {
            'python -c "import click, solders"': [sys.executable, "-c", "import click, solders"],
            "psyche --version": [*PSYCHE, "--version"],
            "psyche balance": [*PSYCHE, "balance", "-k", str(owner), "-u", net.url],
            "psyche run status": [*PSYCHE, "run", "status", RUN, "-u", net.url],
        }
        for argv in commands.values():  # warm the page cache and .pyc files
            timed(argv)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, argv in commands.items():
                times[name].append(timed(argv))
    base = statistics.median(next(iter(times.values())))
    worst = 0.0
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = med / base
        if name != next(iter(times)):
            worst = max(worst, ratio)
        print(f"{name:<36} median {med * 1000:6.0f} ms   {ratio:4.1f}x   (min {min(ts) * 1000:.0f} ms, n={len(ts)})")
    print(f"worst ratio {worst:.1f}x (goal <= {GOAL:g}x): {'met' if worst <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
