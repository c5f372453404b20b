"""Issue 25, bytes of a spot-check: what opening a few DCT blocks of the error-feedback state costs and catches.

A check asks the trainer for an opening of the state its result commits to (client/training/ef_parts.py): the
drawn blocks (δ on a block's h×w cells and its k sent coefficients) with their Merkle multiproof; the sign map
of δ by hash when the run trains with the look-ahead (the overlapped pipeline); and the proof alone of the
next state at the same blocks. This measures, on the demo's settings, what that design stands on:
  1. sizes: the whole state, a leaf, an opening of m leaves, a proof, the sign map, the commitment's CPU;
  2. exactness: a recomputation (client/runner/verify.recompute) from δ and Q opened on m blocks only (zero
     elsewhere), the look-ahead from the true sign map, is bit-identical to the full one on those blocks;
  3. catch rate, per check of m blocks: through the result (a drawn block where a cheat's published
     coefficients differ from the honest recomputation) and through the state chain (a drawn block where the
     state a cheat commits to for its next step differs from the one the recomputation derives);
  4. bytes per check, per round at 100 per mille and as a share of the round's result bytes, per pipeline.

    .venv/bin/python -m bench.verification_bytes [--steps 40]
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import random
import statistics
import time
from typing import Any

import torch

from bench.verification import CHEATS, cheat, demo, train_honest
from client.runner.verify import LEAVES, Opening, recompute
from client.training.ef_parts import choose_leaves, load_partial, split
from client.training.trainer import Trainer


def opened(parts: Any, leaves: list[int]) -> Opening:
    full = Opening.whole(parts)
    return Opening(full.sent, full.signs_hash, full.root, {i: parts.leaves[i] for i in leaves}, [], parts.signs)


def dirty_result(run: dict[str, Any], res: Any, mine: Any) -> list[bool]:
    """Per leaf, whether the published coefficients differ from the recomputation's (index or sign)."""
    out: list[bool] = []
    for n, lay in run["layout"].items():
        q, r = res.params[n], mine.params[n]
        bad = (q.idx != r.idx) | ((q.val < 0) != (r.val < 0))
        out += bad.reshape(lay.plan.num_blocks, -1).any(-1).tolist()
    return out


def p_catch(dirty: list[bool], m: int) -> float:
    """P(m distinct random leaves include a dirty one)."""
    total, clean = len(dirty), len(dirty) - sum(dirty)
    p = 1.0
    for j in range(m):
        p *= max(clean - j, 0) / (total - j)
    return 1 - p


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--exact-leaves", type=int, default=16, help="blocks opened per check in the exactness test")
    p.add_argument("--cheat-steps", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(1)
    run = train_honest(3, a.steps, demo(), lookahead=True)  # with the sign map, to measure both pipelines
    kw = {"distro": run["dcfg"], "lookahead": True}
    last = run["states"][-1][0]
    total = len(last.leaves)
    sizes = [len(x) for x in last.leaves]
    wire = statistics.mean(len(w) for ws in run["wires"] for w in ws)
    round_bytes, checks = 4 * wire, 2 * 100 / 3000  # 3 clients, 100 per mille
    print(f"state {sum(sizes)} B in {total} leaves of {min(sizes)}-{max(sizes)} B; sign map {len(last.signs)} B;"
          f" result {wire:.0f} B, the round's result bytes {round_bytes:.0f} B")
    d = Trainer(copy.deepcopy(run["weights"][0]), run["sched"], "distro", run["dcfg"]).distro
    assert d is not None
    load_partial(d, Opening.whole(last), False)
    for signs in (True, False):
        t0 = time.thread_time()
        for _ in range(20):
            split(d, signs)  # what each trainer pays every round to commit to its state
        print(f"commitment per round ({'with' if signs else 'without'} the sign map):"
              f" {(time.thread_time() - t0) / 20 * 1e3:.2f} ms")
    t0 = time.thread_time()
    for _ in range(20):
        hashlib.sha256(d.state_bytes()).digest()
    print(f"  (the whole state's sha256, the first build's commitment: {(time.thread_time() - t0) / 20 * 1e3:.2f} ms)")

    rng, bad, compared = random.Random(0), 0, 0
    for step in range(1, a.steps - 1):
        for i in range(3):
            keep = sorted(rng.sample(range(total), a.exact_leaves))
            st = run["states"][step][i]
            full = recompute(run["weights"][step], run["sched"], kw, step, run["batches"][step][i], st)
            part = recompute(run["weights"][step], run["sched"], kw, step, run["batches"][step][i], opened(st, keep))
            for leaf in keep:
                compared += 1
                bad += full.next_leaves[leaf] != part.next_leaves[leaf]
    print(f"partial recomputation: {compared} leaves compared with the full one, {bad} not bit-identical")

    dirty: dict[str, list[list[bool]]] = {k: [] for k in CHEATS}
    chain: dict[str, list[list[bool]]] = {k: [] for k in CHEATS}
    for kind in CHEATS:
        for s in range(1, a.cheat_steps + 1):
            res = cheat(run, kind, s)
            honest = recompute(run["weights"][s], run["sched"], kw, s, run["batches"][s][1], run["states"][s][1])
            dirty[kind].append(dirty_result(run, res, honest.result))
            if kind in ("half-batch", "stale-weights"):  # the state the cheat's own step leaves it with
                w = run["weights"][s - 1] if kind == "stale-weights" else run["weights"][s]
                b = run["batches"][s][1]
                b = b[:b.shape[0] // 2] if kind == "half-batch" else b
                mine = recompute(w, run["sched"], kw, s, b, run["states"][s][1]).next_leaves
                chain[kind].append([mine[j] != honest.next_leaves[j] for j in range(total)])
    print("\ncheat: share of leaves whose published coefficients differ (min over steps) | share whose next state"
          " differs (min; the chain check)")
    for kind in CHEATS:
        share = min(sum(x) / total for x in dirty[kind])
        ch = f"{min(sum(x) / total for x in chain[kind]):.3f}" if chain[kind] else "- (no own next state)"
        print(f"  {kind:14} {share:.3f} | {ch}")

    seed = hashlib.sha256(b"bytes").digest()[:8]
    print("\nleaves m | opening B | next proof B | per check, sync / overlapped (+ sign map) | per round at 100‰,"
          " % of result bytes, sync / overlapped | P(catch) by the result alone, min over steps:"
          + " ".join(f" {k}" for k in CHEATS))
    for m in (1, 2, 4, 6, 8, 16):
        sizes_o, sizes_p = [], []
        for s in range(1, a.steps - 1):
            for i in range(3):
                drawn = choose_leaves(seed + bytes([s % 256, i]), b"", run["keys"][i], total, m)
                sizes_o.append(len(run["states"][s][i].open(drawn)))
                sizes_p.append(len(run["states"][s + 1][i].open(drawn, False)))
        sync = statistics.mean(sizes_o) + statistics.mean(sizes_p)
        over = sync + len(last.signs)
        catch = " ".join(f"{min(p_catch(x, m) for x in dirty[k]):.2f}" for k in CHEATS)
        mark = " (verify.LEAVES)" if m == LEAVES else ""
        print(f"{m:7}{mark} | {statistics.mean(sizes_o):7.0f} | {statistics.mean(sizes_p):6.0f} |"
              f" {sync / 1e3:5.1f} / {over / 1e3:5.1f} kB | {checks * sync:4.0f} B = {checks * sync / round_bytes:4.1%}"
              f" / {checks * over:4.0f} B = {checks * over / round_bytes:4.1%} | {catch}")


if __name__ == "__main__":
    main()
