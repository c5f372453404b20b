"""Issue 25, bytes of a spot-check: what fetching a few block-rows of the error-feedback state costs and catches.

A check fetches the pieces of the trainer's state by hash (client/training/ef_parts.py): the header its
result commits to (the list of block-row hashes), the sign map of δ, ROWS block-rows drawn from a seed the
trainer could not know (h rows of a parameter's matrix: its DCT blocks side by side), and the next state's
header. This measures, on the demo's settings, what that design stands on and what the number of rows buys:
  1. sizes: the whole state, a block-row, the header, the sign map that the look-ahead (p − η·sign(δ)
     before the forward pass) needs in full, so every check must fetch it;
  2. exactness: a recomputation from δ and Q known on a few block-rows only (zero elsewhere), the look-ahead
     driven by the true sign map, is bit-identical to the full one on those rows;
  3. catch rate: the probability that m random block-rows include one where each cheat of
     bench/verification.py differs from the honest recomputation (a check fails exactly then:
     tests/unit/test_verify.py), against the bytes a check fetches.

    .venv/bin/python -m bench.verification_bytes [--steps 40] [--rows 2]
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import math
import random
import statistics
import time
import zlib
from typing import Any

import numpy as np
import torch

from bench.verification import CHEATS, cheat, demo, train_honest
from client.runner.verify import Opening, recompute
from client.training.compress import SparseCoeffs
from client.training.distro import Distro
from client.training.ef_parts import load_partial, split
from client.training.trainer import Trainer


def rows_of(d: Distro) -> dict[str, int]:
    """Block-rows per parameter: the matrix view's leading dims times m/h."""
    return {n: lay.plan.num_blocks // lay.plan.blocks_shape[-1] for n, lay in d.layout.items()}


def row_bytes(d: Distro, n: str) -> int:
    """One block-row of parameter n: h·cols f32 of δ plus its blocks' k sent coefficients (int64 + f32)."""
    lay = d.layout[n]
    return 4 * d.delta[n].numel() // rows_of(d)[n] + 12 * lay.plan.blocks_shape[-1] * lay.k


def partial_recompute(run: dict[str, Any], step: int, i: int, keep: dict[str, set[int]]) -> tuple[Distro, Distro]:
    """(full, partial) recomputations of trainer i's step: the partial one knows δ and Q only on `keep`'s
    block-rows and makes the look-ahead from the full sign map, by hand (the trainer's own look-ahead off)."""
    full = Trainer(copy.deepcopy(run["weights"][step]), run["sched"], "distro", run["dcfg"])
    part = Trainer(copy.deepcopy(run["weights"][step]), run["sched"], "distro", run["dcfg"], lookahead=False)
    assert full.distro is not None and part.distro is not None
    full.distro.load_state(whole_state(run, step, i))
    part.distro.load_state(whole_state(run, step, i))
    signs = {n: torch.sign(x) for n, x in part.distro.delta.items()}
    for n, x in part.distro.delta.items():
        view = x.view(rows_of(part.distro)[n], -1)
        mask = torch.zeros(view.shape[0], dtype=torch.bool)
        mask[list(keep[n])] = True
        view[~mask] = 0.0
        if part.distro.sent is not None:
            q = part.distro.sent[n]
            flat = mask.reshape(*q.idx.shape[:-2], 1, 1).expand(q.idx.shape)  # idx: [*lead, m/h, n/w, k]
            part.distro.sent[n] = SparseCoeffs(torch.where(flat, q.idx, 0), torch.where(flat, q.val, 0.0))
    lr_prev = run["sched"](step - 1) if step > 0 else 0.0
    with torch.no_grad():
        for n, p in part.model.named_parameters():
            p.sub_(signs[n].to(p.dtype), alpha=lr_prev)
    full.train_step(step, run["batches"][step][i])
    part.train_step(step, run["batches"][step][i])
    return full.distro, part.distro


def whole_state(run: dict[str, Any], step: int, i: int = 0) -> bytes:
    """Trainer i's state before `step` as one blob (Distro.state_bytes), rebuilt from its parts."""
    d = Trainer(copy.deepcopy(run["weights"][0]), run["sched"], "distro", run["dcfg"]).distro
    assert d is not None
    parts = run["states"][step][i]
    d.lookahead_signs = load_partial(d, Opening.whole(parts).header, parts.signs, dict(enumerate(parts.rows)))
    return d.state_bytes()


def same_rows(a: Distro, b: Distro, n: str, r: int) -> bool:
    rows = rows_of(a)[n]
    qa, qb = a.sent, b.sent
    assert qa is not None and qb is not None
    return torch.equal(a.delta[n].view(rows, -1)[r], b.delta[n].view(rows, -1)[r]) and \
        torch.equal(qa[n].idx.reshape(rows, -1)[r], qb[n].idx.reshape(rows, -1)[r]) and \
        torch.equal(qa[n].val.reshape(rows, -1)[r], qb[n].val.reshape(rows, -1)[r])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rows", type=int, default=2, help="block-rows kept per parameter in the exactness test")
    p.add_argument("--cheat-steps", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(1)
    run = train_honest(3, a.steps, demo())
    d = Trainer(copy.deepcopy(run["weights"][0]), run["sched"], "distro", run["dcfg"]).distro
    assert d is not None
    names, nrows = list(d.layout), rows_of(d)
    units = [(n, r) for n in names for r in range(nrows[n])]
    sizes = [row_bytes(d, n) for n, _ in units]
    state = sum(map(len, run["states"][-1][0].rows))
    d.load_state(whole_state(run, -1))
    flat = torch.cat([x.reshape(-1) for x in d.delta.values()]).numpy()
    signs = np.packbits(flat < 0).tobytes() + np.packbits(flat != 0).tobytes()
    sign_z = len(run["states"][-1][0].signs)  # as ef_parts stores it: negative bits raw, non-zero bits deflated
    header = len(run["states"][-1][0].header)
    wire = statistics.mean(len(w) for ws in run["wires"] for w in ws)
    round_bytes, checks = 4 * wire, 2 * 100 / 3000  # 3 clients, 100 per mille
    print(f"state {state} B; {len(units)} block-rows of {min(sizes)}-{max(sizes)} B"
          f" (mean {statistics.mean(sizes):.0f});"
          f" the header (their hashes) {header} B; sign map of δ {len(signs)} B raw, {sign_z} B stored"
          f" ({len(zlib.compress(signs, 9))} B all deflated);"
          f" whole state zlib-1 {len(zlib.compress(whole_state(run, -1), 1))} B")
    t0 = time.thread_time()
    for _ in range(20):
        split(d)  # what each trainer pays every round to commit (ef) and store its state in parts
    commit = (time.thread_time() - t0) / 20
    t0 = time.thread_time()
    for _ in range(20):
        hashlib.sha256(d.state_bytes()).digest()  # the whole-state commitment it replaced
    whole_commit = (time.thread_time() - t0) / 20
    print(f"commitment per round: in parts {commit * 1e3:.2f} ms, the whole state's sha256 {whole_commit * 1e3:.2f} ms"
          " (plus, before, the blob store hashing the 1.46 MB blob again; parts are stored under the hashes"
          " computed here)")
    rng = random.Random(0)
    bad = total = 0
    for step in range(1, a.steps - 1):
        for i in range(3):
            keep = {n: set(rng.sample(range(nrows[n]), min(a.rows, nrows[n]))) for n in names}
            full, part = partial_recompute(run, step, i, keep)
            for n in names:
                for r in keep[n]:
                    total += 1
                    bad += not same_rows(full, part, n, r)
    print(f"partial recomputation: {total} block-rows compared with the full one, {bad} not bit-identical")
    dirty: dict[str, list[float]] = {k: [] for k in CHEATS}
    for kind in CHEATS:
        for s in range(1, a.cheat_steps + 1):
            res = cheat(run, kind, s)
            mine = recompute(run["weights"][s], run["sched"], {"distro": run["dcfg"]}, s, run["batches"][s][1],
                             run["states"][s][1]).result
            differs = []
            for n in names:
                q, r = res.params[n], mine.params[n]
                neg = (q.val < 0) != (r.val < 0)
                bad_blocks = ((q.idx != r.idx) | neg).reshape(nrows[n], -1).any(-1)
                differs += bad_blocks.tolist()
            dirty[kind].append(sum(differs) / len(differs))
    print("\nrows m | bytes per check, exact / + next rows (sampled tolerance; verify draws every row there)"
          " | per round at 100‰, % of result bytes | P(catch) per check:"
          + " ".join(f" {k}" for k in CHEATS))
    for m in (1, 2, 3, 4, 8):
        part_bytes = m * statistics.mean(sizes)
        exact = header + sign_z + part_bytes + header  # this state's list, signs, m rows; the next state's list
        tol = exact + part_bytes  # and the next state's m rows, to compare within a tolerance
        catch = []
        for kind in CHEATS:
            ps = [1 - math.comb(round((1 - f) * len(units)), m) / math.comb(len(units), m) for f in dirty[kind]]
            catch.append(f"{min(ps):.2f}")
        print(f"{m:6} | {exact / 1e3:6.1f} kB / {tol / 1e3:6.1f} kB | {checks * exact:6.0f} B = "
              f"{checks * exact / round_bytes:4.0%} / {checks * tol / round_bytes:4.0%} | min over steps: "
              + " ".join(catch))
    whole = state * checks
    print(f"the whole state instead (next only on demand): {whole:.0f} B per round = {whole / round_bytes:.0%};"
          f" floor of any exact scheme (the sign map alone): {checks * sign_z:.0f} B"
          f" = {checks * sign_z / round_bytes:.0%}")


if __name__ == "__main__":
    main()
