"""Issue 25 in figures: how fast each cheat is caught, how often honest work is wrongly flagged, what it costs.

Everything is measured on the real code at the demo's settings (examples/run.toml: its model, DisTrO 16/1
1-bit, 64-token samples, a 12-sample batch split among 3 clients): N honest trainers train STEPS steps
(each step's results applied by all, as in a run); every result goes through the cheap checks
(client/runner/result_checks.ResultMemory) and is recomputed by client/runner/verify.verify, in exact mode
(the trainer's summation order) and in tolerance mode by a verifier summing in micro-batches of 1 (another
float rounding: the stand-in for other hardware); each check fetches an opening of the trainer's state (and
its sign map, with the look-ahead) as phase_verify does, and its bytes are counted. Cheats (trainer 1; trainer 0
is the copier's victim) at every step ≥ 1: lazy (random signs), copier (trainer 0's coefficients under its
own commitment), replayer (its previous result relabelled), half-batch, stale weights (the previous step's).
Each cheat's next result commits to the state its own step left it with (`cheat_next_state`), so a check
sees both its result and its state chain; the "alone" column serves its honest next state instead (a cheat
that did the work but published something else: the drawn blocks of the result alone decide).

Rounds until caught: the real draw (coordinator_sdk.verdicts.eligible) over random round seeds and the
conviction rule of the verdict instruction (coordinator_sdk.verdicts.convicted on the round's and on the
epoch's counts, the epoch's first accuser counted once, as coordinator_sdk/model/verdicts.py counts), each
drawn check failing as often as the recomputations above failed. One long epoch is assumed. A copy or a
replay rejected by every peer's cheap check is left out by every witness: caught in its first round.

    .venv/bin/python -m bench.verification [--steps 170] [--seeds 200] [--per-mille 100,1000,3000]
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import random
import statistics
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from client.runner.phase_verify import restore, snapshot
from client.runner.result_checks import ResultMemory, agreement, fingerprint
from client.runner.verify import LocalSource, recompute, verify
from client.training.config import ModelConfig
from client.training.data import ShardedBatches, load_samples, prepare_corpus
from client.training.distro import DistroConfig, DistroResult, result_layout
from client.training.model import build_model
from client.training.result_codec import decode_result, encode_result
from client.training.schedule import Constant
from client.training.trainer import Trainer
from coordinator_sdk.verdicts import convicted, eligible
from devtools.faulty_client import random_values

REPO = Path(__file__).resolve().parents[1]
CHEATS = ("lazy", "copier", "replayer", "half-batch", "stale-weights")


def demo() -> dict[str, Any]:
    return tomllib.loads((REPO / "examples" / "run.toml").read_text())


def train_honest(n: int, steps: int, cfg: dict[str, Any], lookahead: bool = True) -> dict[str, Any]:
    """n honest trainers, `steps` steps: the weights, batches, states and wire-decoded results of each step,
    and each train step's CPU time (thread time: torch is pinned to one thread here). `lookahead`: the
    overlapped pipeline's sign look-ahead (the demo's); False: the synchronous pipeline's training."""
    mcfg = ModelConfig.from_dict({k: v for k, v in cfg["model"].items() if k != "seed"})
    dcfg = DistroConfig(**{k: v for k, v in cfg["distro"].items() if k != "pipeline"})
    rows = int(cfg["config"]["global_batch_size_start"]) // n
    seq = int(cfg["config"]["max_seq_len"])
    base = build_model(mcfg, seed=int(cfg["model"].get("seed", 0)))
    layout = result_layout(base, dcfg)
    sched = Constant(base_lr=float(cfg["lr"]["base"]), warmup_steps=0)
    trainers = [Trainer(copy.deepcopy(base), sched, "distro", dcfg, lookahead=lookahead) for _ in range(n)]
    data = ShardedBatches(load_samples(prepare_corpus(Path("/tmp") / f"psyche-bench-pydoc-{seq}", seq), seq), n)
    keys = [hashlib.sha256(bytes([i])).digest() for i in range(n)]
    run: dict[str, Any] = {"weights": [], "batches": [], "states": [], "published": [], "wires": [],
                           "train_cpu": [], "apply_cpu": [], "commit_cpu": [], "layout": layout, "dcfg": dcfg,
                           "sched": sched, "keys": keys, "lookahead": lookahead}
    for step in range(steps):
        run["weights"].append(copy.deepcopy(trainers[0].model))
        batches = [data.batch(i, step, rows) for i in range(n)]
        outs = []
        for i, t in enumerate(trainers):
            t0 = time.thread_time()
            outs.append(t.train_step(step, batches[i]))
            run["train_cpu"].append(time.thread_time() - t0)
            run["commit_cpu"].append(t.distro.commit_cpu_s)  # type: ignore[union-attr]
        wires = [encode_result(o.result, layout, dcfg, sender=keys[i]) for i, o in enumerate(outs)]
        run["batches"].append(batches)
        run["states"].append([o.result.state for o in outs])
        run["wires"].append(wires)
        run["published"].append([decode_result(w, layout, dcfg, expected_sender=keys[i]) for i, w in enumerate(wires)])
        for t in trainers:
            t0 = time.thread_time()
            t.apply([o.result for o in outs], step)
            run["apply_cpu"].append(time.thread_time() - t0)
    return run


def cheat(run: dict[str, Any], kind: str, step: int, i: int = 1) -> DistroResult:
    """What cheater i publishes at `step` (≥ 1) instead of its honest result, through the wire codec."""
    lay, dcfg, key = run["layout"], run["dcfg"], run["keys"][i]
    own = run["published"][step][i]
    if kind == "lazy":
        return decode_result(random_values(run["wires"][step][i]), lay, dcfg)
    if kind == "copier":
        return replace(run["published"][step][0], sender=key, ef=own.ef)
    if kind == "replayer":
        return replace(run["published"][step - 1][i], step=step, ef=own.ef)
    weights = run["weights"][step - 1] if kind == "stale-weights" else run["weights"][step]
    batch = run["batches"][step][i]
    batch = batch[:batch.shape[0] // 2] if kind == "half-batch" else batch
    rec = recompute(weights, run["sched"], {"distro": dcfg, "lookahead": run["lookahead"]}, step, batch,
                    run["states"][step][i])
    res = DistroResult(step, {n: q.signs() for n, q in rec.result.params.items()}, True, ef=rec.result.ef)
    return decode_result(encode_result(res, lay, dcfg, sender=key), lay, dcfg)


def cheat_next_state(run: dict[str, Any], kind: str, step: int, i: int = 1) -> Any:
    """The state cheater i commits to in its result of step+1: what its own step left it with. A half batch or
    stale weights fold another gradient into δ; a lazy, copied or replayed result took no work, so its state
    stays the one before the step (any state it could commit without the gradient fails the chain alike)."""
    if kind in ("lazy", "copier", "replayer"):
        return run["states"][step][i]
    weights = run["weights"][step - 1] if kind == "stale-weights" else run["weights"][step]
    batch = run["batches"][step][i]
    batch = batch[:batch.shape[0] // 2] if kind == "half-batch" else batch
    return recompute(weights, run["sched"], {"distro": run["dcfg"], "lookahead": run["lookahead"]}, step, batch,
                     run["states"][step][i]).next_state()


def check(run: dict[str, Any], i: int, step: int, res: DistroResult, mode: str, next_state: Any = None) -> Any:
    """verify() as a verifier runs it (phase_verify): on a throwaway copy of the weights (owned), exact in the
    trainer's order, or tolerance summing in micro-batches of 1, fetching openings of the trainer's state (the
    bytes of each check are appended to run["fetched"][mode]) with a seed of its own. `next_state`: the state
    the trainer's next result commits to (default: its honest one)."""
    nxt = run["published"][step + 1][i].ef if step + 1 < len(run["published"]) else None
    if next_state is not None:
        nxt = next_state.ef
    kw: dict[str, Any] = {"distro": run["dcfg"]}
    if mode == "tolerance":
        kw["micro_batch_size"] = 1
    states = run["states"]
    source = LocalSource(states[step][i], next_state if next_state is not None else
                         states[step + 1][i] if step + 1 < len(states) else None)
    model = copy.deepcopy(run["weights"][step])  # restore()'s copy: timed apart, in costs()
    seed = hashlib.sha256(b"check" + step.to_bytes(8, "little") + bytes([i])).digest()[:8]
    kw["lookahead"] = run["lookahead"]
    v = verify(run["keys"][i], res, source, model, run["sched"], kw, run["batches"][step][i], seed,
               run["keys"][(i + 1) % len(run["keys"])], next_ef=nxt, mode=mode, owned=True)
    run.setdefault("fetched", {}).setdefault(mode, []).append(source.fetched)
    return v


def cheap_rejects(run: dict[str, Any], kind: str, step: int) -> bool:
    """Whether a peer that gathered the honest results of step-1 and step (the victim's first) rejects it."""
    mem, keys = ResultMemory(), run["keys"]
    for s in (step - 1, step):
        for i, r in enumerate(run["published"][s]):
            if s == step and i == 1:
                continue
            mem.check(s, keys[i], r)
    return mem.check(step, keys[1], cheat(run, kind, step)) is not None


def rounds_until_caught(p_fail: float, n: int, per_mille: int, seed: int, limit: int = 2000) -> tuple[int, int]:
    """(judged rounds until conviction, rounds whose own verdicts convicted) for one cheater among n clients."""
    rng = random.Random(seed)
    keys = [rng.randbytes(32) for _ in range(n)]
    cheater, verifiers = keys[0], keys[1:]
    epoch_fails = epoch_passes = 0
    accuser = None
    for r in range(1, limit + 1):
        fails = passes = 0
        seed_r = rng.getrandbits(64)
        for v in verifiers:
            if not eligible(seed_r, v, cheater, n, per_mille):
                continue
            if rng.random() < p_fail:
                fails += 1
                if accuser != v:
                    accuser = accuser or v
                    epoch_fails += 1
            else:
                passes += 1
                epoch_passes += 1
            if convicted(fails, passes) or convicted(epoch_fails, epoch_passes):
                return r, int(convicted(fails, passes))
    return limit, 0


def per_round_catch(n: int, per_mille: int, p_fail: float, rounds: int = 20000) -> tuple[float, float]:
    """(P a round's result draws ≥ 1 failing verdict, P it draws ≥ 2: convicted by that round alone)."""
    rng = random.Random(1)
    keys = [rng.randbytes(32) for _ in range(n)]
    one = two = 0
    for _ in range(rounds):
        s = rng.getrandbits(64)
        f = sum(1 for v in keys[1:] if eligible(s, v, keys[0], n, per_mille) and rng.random() < p_fail)
        one += f >= 1
        two += f >= 2
    return one / rounds, two / rounds


def costs(run: dict[str, Any], n: int, per_mille: int, verify_cpu: float) -> dict[str, float]:
    """Per client and round, what verification adds to a round's training (CPU s: its train step and its apply
    of the round's results; bytes: its result served to the n-1 others and theirs received)."""
    train = statistics.median(run["train_cpu"]) + statistics.median(run["apply_cpu"])
    model = run["weights"][0]
    t0 = time.thread_time()
    for _ in range(20):
        snap = snapshot(model)  # Verifier.note: the weights of each step are kept for 2 rounds
    note = (time.thread_time() - t0) / 20
    spare, t0 = copy.deepcopy(model), time.thread_time()
    for _ in range(20):
        restore(model, snap, [spare])  # per check: the snapshot loaded into the copy an earlier check left
    verify_cpu += (time.thread_time() - t0) / 20
    # every trainer, every round, inside its train step (`generate`), timed there: the same split timed on its
    # own, caches warm, took ~2.9 ms where the step's took ~3.3 ms (median)
    commit = statistics.median(run["commit_cpu"])
    mem, t0 = ResultMemory(), time.thread_time()
    steps = len(run["published"])
    for s in range(steps):
        for i, r in enumerate(run["published"][s]):
            mem.check(s, run["keys"][i], r)
    cheap = (time.thread_time() - t0) / steps * (n - 1) / n  # a client checks the n-1 others' results
    checks = (n - 1) * per_mille / (n * 1000)  # expected recomputations per client and round
    wire = statistics.mean(len(w) for ws in run["wires"] for w in ws)
    state = statistics.mean(sum(map(len, s.leaves)) + len(s.signs or b"") for ss in run["states"] for s in ss if s)
    round_bytes = 2 * (n - 1) * wire  # its result served to n-1 peers, theirs received
    cpu = note + cheap + checks * verify_cpu
    out = {"commit_cpu_s": commit, "with_commit_ratio": (cpu + commit) / train,
           "train_cpu_s": train, "note_cpu_s": note, "cheap_cpu_s": cheap, "checks": checks,
           "verify_cpu_s": verify_cpu, "extra_cpu_s": cpu, "cpu_ratio": cpu / train, "wire_bytes": wire,
           "state_bytes": state, "round_bytes": round_bytes}
    for mode, got in run.get("honest_fetched", {}).items():  # bytes each honest check fetched
        per_check = statistics.mean(got)
        out[f"check_bytes_{mode}"] = per_check
        out[f"extra_bytes_{mode}"] = checks * per_check
        out[f"bytes_ratio_{mode}"] = checks * per_check / round_bytes
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--steps", type=int, default=170, help="steps of honest training (clients × steps−1 checks)")
    p.add_argument("--cheat-steps", type=int, default=12, help="steps each cheat is recomputed at")
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--per-mille", default="100,1000,3000")
    p.add_argument("--draw-clients", default="3,8", help="clients per round for the draw figures")
    p.add_argument("--epoch-rounds", type=int, default=10, help="judged rounds of an epoch (the demo's epoch:"
                   " 12 rounds, of which the last 2 are judged after it or never)")
    p.add_argument("--global-batch", type=int, default=None, help="samples per round, split among the clients"
                   " (default: the demo's, 12): the figure the CPU cost moves with (training grows with the"
                   " tokens of a client's step, the commitment and a check's fixed parts do not)")
    p.add_argument("--model", default="", help="overrides of the demo's [model], e.g. dim=256,n_layers=4,ffn_dim=512"
                   " (the commitment grows with the parameters, training with parameters x tokens)")
    p.add_argument("--pipeline", choices=["overlapped", "sync"], default=None,
                   help="default: the demo's (examples/run.toml). overlapped: trained with the sign look-ahead,"
                        " whose sign map a check fetches; sync: without it")
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg, n = demo(), a.clients
    if a.global_batch is not None:
        cfg["config"]["global_batch_size_start"] = a.global_batch
    for kv in filter(None, a.model.split(",")):
        key, _, value = kv.partition("=")
        if key not in cfg["model"] or not value.isdigit():
            raise SystemExit(f"--model: {kv!r} is not KEY=INT with KEY one of {sorted(cfg['model'])}")
        cfg["model"][key] = int(value)
    if a.pipeline is None:
        a.pipeline = "sync" if cfg["distro"].get("pipeline") == "synchronous" else "overlapped"
    t0 = time.monotonic()
    run = train_honest(n, a.steps, cfg, lookahead=a.pipeline == "overlapped")
    print(f"{'model ' + a.model if a.model else 'demo model'}, {a.pipeline} pipeline, {n} clients ×"
          f" {a.steps} steps of"
          f" {cfg['config']['global_batch_size_start']} samples trained in"
          f" {time.monotonic() - t0:.0f} s")
    honest: dict[str, list[Any]] = {"exact": [], "tolerance": []}
    mem, cheap_fp = ResultMemory(), 0
    for s in range(a.steps - 1):
        for i in range(n):
            cheap_fp += mem.check(s, run["keys"][i], run["published"][s][i]) is not None
            for mode in honest:
                honest[mode].append(check(run, i, s, run["published"][s][i], mode))
    checked = len(honest["exact"])
    run["honest_fetched"] = {m: list(v) for m, v in run["fetched"].items()}  # cheats' checks left out
    for mode, vs in honest.items():
        fp = sum(v.outcome == "fail" for v in vs)
        ag = [v.agreement for v in vs]
        print(f"honest, {mode:9}: {fp} false positives of {checked} checked results; agreement min {min(ag):.3f}"
              f" mean {statistics.mean(ag):.3f}; cpu {statistics.median(v.cpu_s for v in vs) * 1e3:.1f} ms/check")
    print(f"honest, cheap checks: {cheap_fp} false positives of {checked} results")
    per_mille = [int(x) for x in a.per_mille.split(",")]
    steps = range(1, min(a.cheat_steps + 1, a.steps - 1))
    print(f"\n{'cheat':14} {'fail exact':>10} {'fail tol':>9} {'alone':>7} {'agree max':>9} {'cheap rej':>9}"
          f"   (fails with the state the cheat commits next; 'alone': exact, its honest next state served, the"
          f" result alone decides; then per clients and rate: P a round's result draws ≥ 1 / ≥ 2 fails; judged"
          f" rounds until caught)")
    for kind in CHEATS:
        fails = {"exact": 0, "tolerance": 0}
        ags, rej, alone = [], 0, 0
        for s in steps:
            res, own_next = cheat(run, kind, s), cheat_next_state(run, kind, s)
            alone += check(run, 1, s, res, "exact").outcome == "fail"
            for mode in fails:
                v = check(run, 1, s, res, mode, own_next)
                fails[mode] += v.outcome == "fail"
                if mode == "tolerance":
                    ags.append(agreement(fingerprint(res), fingerprint(recompute(
                        run["weights"][s], run["sched"], {"distro": run["dcfg"], "lookahead": run["lookahead"]}, s,
                        run["batches"][s][1], run["states"][s][1]).result)))
            rej += cheap_rejects(run, kind, s)
        p_fail = fails["exact"] / len(steps)
        print(f"{kind:14} {fails['exact']:>4}/{len(steps):<5} {fails['tolerance']:>3}/{len(steps):<5}"
              f" {alone:>3}/{len(steps):<3} {max(ags):9.3f} {rej:>4}/{len(steps):<4}")
        for dn in [int(x) for x in a.draw_clients.split(",")]:
            cols = []
            for pm in per_mille:
                one, two = per_round_catch(dn, pm, p_fail)
                rs = [1] * a.seeds if rej == len(steps) else \
                    [rounds_until_caught(p_fail, dn, pm, seed)[0] for seed in range(a.seeds)]
                within = sum(r <= a.epoch_rounds for r in rs) / len(rs)
                cols.append(f"{pm}‰: P≥1 fail {one:.2f} P≥2 {two:.2f} rounds median {statistics.median(rs):.0f}"
                            f" worst {max(rs)} caught within {a.epoch_rounds}: {within:.0%}")
            print(f"    {dn} clients: " + " | ".join(cols))
    vcpu = statistics.median(v.cpu_s for v in honest["exact"])
    for pm in per_mille:
        c = costs(run, n, pm, vcpu)
        print(f"\ncost at {pm}‰ ({c['checks']:.3f} recomputations per client and round):"
              f" CPU +{c['extra_cpu_s'] * 1e3:.2f}"
              f" ms per round = {c['cpu_ratio']:.1%} of training {c['train_cpu_s'] * 1e3:.1f} ms (weights snapshot"
              f" {c['note_cpu_s'] * 1e3:.2f}, cheap checks {c['cheap_cpu_s'] * 1e3:.2f}, restore + verify"
              f" {c['verify_cpu_s'] * 1e3:.1f} ms each); each trainer's commitment to its state"
              f" {c['commit_cpu_s'] * 1e3:.2f} ms (inside training), counted as verification's:"
              f" {c['with_commit_ratio']:.1%}; result {c['wire_bytes']:.0f} B, the round's result bytes"
              f" {c['round_bytes']:.0f}, state {c['state_bytes']:.0f} B")
        for mode in ("exact", "tolerance"):
            if f"extra_bytes_{mode}" in c:
                print(f"    bytes, {mode:9}: {c[f'check_bytes_{mode}']:.0f} B per honest check (mean);"
                      f" +{c[f'extra_bytes_{mode}']:.0f} B per round = {c[f'bytes_ratio_{mode}']:.0%} of the"
                      f" round's result bytes")


if __name__ == "__main__":
    main()
