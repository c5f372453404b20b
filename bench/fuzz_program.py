"""Differential fuzzing at scale: random instruction sequences through the program (LiteSVM) and the
reference model; prints how many sequences and instructions ran, how many diverged, and the first
divergent sequence (a reproducer) if any.

    .venv/bin/python -m bench.fuzz_program --examples 10000 [--seed 1] [--length 40]
"""
from __future__ import annotations

import argparse
import random
import time

from devtools.differential import Divergence
from devtools.fuzz import CONFIGS, Coverage, FuzzWorld, random_sequence, run_sequence


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--length", type=int, default=40, help="maximum instructions per sequence")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    world = FuzzWorld()
    coverage = Coverage()
    ran = instructions = diverged = 0
    first: tuple | None = None
    t0 = time.perf_counter()
    for i in range(args.examples):
        config = rng.randrange(len(CONFIGS))
        ops = random_sequence(rng, rng.randint(5, args.length))
        try:
            instructions += run_sequence(world, config, ops, coverage)
        except Divergence as e:
            diverged += 1
            first = first or (i, config, ops, str(e))
        ran += 1
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} sequences, {diverged} diverged, {time.perf_counter() - t0:.0f} s", flush=True)
    dt = time.perf_counter() - t0
    print(f"sequences run: {ran}, instructions: {instructions}, diverged: {diverged}, "
          f"time: {dt:.1f} s ({ran / dt:.1f} sequences/s)")
    phases = ["Uninitialized", "WaitingForMembers", "Warmup", "RoundTrain", "RoundWitness", "Cooldown", "Finished",
              "Paused"]
    seen = ", ".join(f"{phases[k]} {v}" for k, v in sorted(coverage.phases.items()))
    print(f"instructions observed in each phase: {seen}; most epochs completed: {coverage.max_epoch}")
    print(f"sequences ending with a dropped client: {coverage.drops}, after an eviction: {coverage.evictions}, "
          f"with slashed points: {coverage.slashed}, with banked points: {coverage.banked}, "
          f"with a client ejected by verdicts: {coverage.convictions}")
    accepted, refused, majority = coverage.votes
    print(f"checkpoint votes: {accepted} accepted (in Cooldown), {refused} refused, {majority} with a majority, "
          f"{coverage.adopted} changed the run's checkpoint")
    early = ", ".join(f"{k} {v}" for k, v in sorted(coverage.early_moves.items())) or "none"
    print(f"withdraw / health_check accepted in RoundTrain after a witness posted: {coverage.leaves_after_posts}; "
          f"early RoundWitness because the other elected witnesses had left, by instruction: {early}")
    print("accepted / refused by instruction: " + ", ".join(
        f"{k} {coverage.accepted.get(k, 0)}/{coverage.refused.get(k, 0)}"
        for k in sorted(set(coverage.accepted) | set(coverage.refused))))
    if first:
        i, config, ops, err = first
        print(f"first divergence: sequence #{i}, config {config}\n  ops = {ops!r}\n  {err}")
    return 1 if diverged else 0


if __name__ == "__main__":
    raise SystemExit(main())
