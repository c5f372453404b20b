"""DisTrO vs data-parallel AdamW at equal tokens, K simulated trainers in one process.

Each DisTrO trainer has its own model copy, data shard and residual; results travel through the real
wire codec (bytes counted from `encode_result`). Two pipelines (`--pipeline`):
* overlapped (the protocol today, as in Psyche): results are applied `--delay` steps late (round t trains on
  weights holding results up to t−2), with the sign look-ahead standing in for the pending ones;
* sync: each step's results are applied before the next step trains (delay 1, no look-ahead), which costs
  the overlap of communication with training in a real network.
The AdamW baseline takes one step per global batch (the union of the K shards' batches), i.e. what
all-reducing dense fp32 gradients would give. With several `--seeds` the ratio is the mean of the per-seed
ratios (each seed changes the init, the shared draw and nothing else; the data order is fixed).

    .venv/bin/python -m bench.distro_vs_adamw                 # both archs, both pipelines, 3 seeds
    .venv/bin/python -m bench.distro_vs_adamw --arch llama --steps 100 --seeds 0 --selection topk
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from bench.model_configs import bench_config
from bench.png_plot import line_plot
from client.training.config import ModelConfig
from client.training.data import ShardedBatches, load_samples, prepare_corpus
from client.training.distro import DistroConfig, result_layout
from client.training.model import build_model
from client.training.result_codec import decode_result, encode_result
from client.training.schedule import Cosine
from client.training.trainer import Trainer

# per selection mode, arch and pipeline: (chunk, k, lr, decay) from this bench (docs/benchmarks.md): top-k's sweep;
# for shared, issue 26's tuning (seed-0 screens, then 3 seeds): deepseek's 743 k parameters need k <= 14 of a
# 16x16 block for >= 500x fewer bytes than dense fp32; decay 0.95 with lr 5e-3-6e-3 won llama's sync pipeline,
# but made its overlapped pipeline worse than lr 4e-3 with decay 0.99 (1.14 vs 1.09); deepseek's sync pipeline
# does best with a faster-decaying residual (decay 0.85, lr 6e-3: 1.005 vs 1.039 at 0.95, 5e-3), its overlapped
# pipeline with 3 of each 8x8 block (1.090 vs 1.122 at 14 of 16x16, 631x). --chunk/--topk/--distro-lr/--decay
# override them all
DEFAULTS = {
    "topk": {arch: {pl: (16, 1, 2e-3, 0.99) for pl in ("overlapped", "sync")} for arch in ("llama", "deepseek")},
    "shared": {
        "llama": {"overlapped": (16, 15, 4e-3, 0.99), "sync": (16, 15, 6e-3, 0.95)},
        "deepseek": {"overlapped": (8, 3, 6e-3, 0.95), "sync": (16, 14, 6e-3, 0.85)},
    },
}


def resolve(a: argparse.Namespace, arch: str, pipeline: str) -> argparse.Namespace:
    """The arguments with the DisTrO settings left unset on the command line filled in for `arch`/`pipeline`."""
    chunk, k, lr, decay = DEFAULTS[a.selection][arch][pipeline]
    return argparse.Namespace(**{**vars(a), "chunk": chunk if a.chunk is None else a.chunk,
                                 "topk": k if a.topk is None else a.topk,
                                 "distro_lr": lr if a.distro_lr is None else a.distro_lr,
                                 "decay": decay if a.decay is None else a.decay})


def run_distro(cfg: ModelConfig, data: ShardedBatches, a: argparse.Namespace, seed: int, sync: bool) -> dict:
    dcfg = DistroConfig(chunk=a.chunk, topk=a.topk, decay=a.decay, weight_decay=a.weight_decay,
                        quantize_1bit=not a.no_1bit, selection=a.selection, seed=seed)
    delay, lookahead = (1, False) if sync else (a.delay, not a.no_lookahead)
    base = build_model(cfg, seed=seed)
    sched = Cosine(base_lr=a.distro_lr, final_lr=a.distro_lr / 10, total_steps=a.steps, warmup_steps=a.warmup)
    trainers = [Trainer(copy.deepcopy(base), sched, "distro", dcfg, clip_grad_norm=1.0, lookahead=lookahead)
                for _ in range(a.trainers)]
    layout = result_layout(base, dcfg)
    pending: dict[int, list] = {}
    curve, evals, wire = [], [], []
    for step in range(a.steps + delay):
        ready = pending.pop(step - delay, None)
        if ready is not None:
            for t in trainers:
                t.apply(ready, step - delay)
        if step >= a.steps:
            continue
        if step % a.eval_every == 0:
            evals.append((step, trainers[0].eval_loss(data.eval)))
        blobs, losses = [], []
        for i, t in enumerate(trainers):
            out = t.train_step(step, data.batch(i, step, a.batch))
            blobs.append(encode_result(out.result, layout, dcfg))
            losses.append(out.loss)
        wire.append(sum(map(len, blobs)) / len(blobs))
        pending[step] = [decode_result(b, layout, dcfg, expected_step=step) for b in blobs]
        curve.append(sum(losses) / len(losses))
    evals.append((a.steps, trainers[0].eval_loss(data.eval)))
    ref = trainers[0].model.state_dict()
    identical = all(torch.equal(ref[k], t.model.state_dict()[k]) for t in trainers[1:] for k in ref)
    return {"curve": curve, "evals": evals, "bytes": sum(wire) / len(wire), "identical": identical}


def run_adamw(cfg: ModelConfig, data: ShardedBatches, a: argparse.Namespace, seed: int) -> dict:
    model = build_model(cfg, seed=seed)
    sched = Cosine(base_lr=a.adamw_lr, final_lr=a.adamw_lr / 10, total_steps=a.steps, warmup_steps=a.warmup)
    t = Trainer(model, sched, "adamw", clip_grad_norm=1.0, adamw_weight_decay=a.weight_decay)
    curve, evals = [], []
    for step in range(a.steps):
        if step % a.eval_every == 0:
            evals.append((step, t.eval_loss(data.eval)))
        curve.append(t.train_step(step, data.global_batch(step, a.batch)).loss)
    evals.append((a.steps, t.eval_loss(data.eval)))
    return {"curve": curve, "evals": evals}


def last(curve: list[float], n: int = 10) -> float:
    return sum(curve[-n:]) / len(curve[-n:])


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["llama", "deepseek", "both"], default="both")
    p.add_argument("--trainers", type=int, default=4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8, help="sequences per trainer per step")
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    # small blocks beat Psyche's typical chunk 64 / top-k 8 at the same bytes (docs/benchmarks.md);
    # `--selection topk --chunk 64 --topk 8 --decay 0.95` is the Psyche-like row
    p.add_argument("--selection", choices=["topk", "shared"], default="shared")
    p.add_argument("--chunk", type=int, default=None, help="DCT block side (default: per selection, arch and pipeline)")
    p.add_argument("--topk", type=int, default=None,
                   help="coefficients per block (default: per selection, arch and pipeline)")
    p.add_argument("--decay", type=float, default=None, help="default: per selection, arch and pipeline")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--no-1bit", action="store_true")
    p.add_argument("--distro-lr", type=float, default=None, help="default: per selection, arch and pipeline")
    p.add_argument("--adamw-lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--pipeline", choices=["overlapped", "sync", "both"], default="both")
    p.add_argument("--delay", type=int, default=2, help="overlapped: steps between a result's step and its apply")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--no-lookahead", action="store_true", help="ablation: skip the protocol's look-ahead step")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--no-adamw", action="store_true", help="skip the baseline (ratios then need --adamw-from)")
    p.add_argument("--adamw-from", default=None, help="JSON lines of earlier runs to take AdamW losses from")
    p.add_argument("--jsonl", default=None, help="append one JSON line per run here")
    p.add_argument("--summarize", default=None, metavar="JSONL", help="only print the table of earlier runs")
    p.add_argument("--png", default="bench/distro_vs_adamw.png")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if a.summarize:
        print("\n".join(summarize(Path(a.summarize), a)))
        return
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        samples = load_samples(prepare_corpus(Path(tmp) / "pydoc", a.seq), a.seq)
    data = ShardedBatches(samples, a.trainers, eval_samples=128)
    known = {}
    if a.adamw_from:
        for line in Path(a.adamw_from).read_text().splitlines():
            r = json.loads(line)
            if r["kind"] == "adamw" and r["steps"] == a.steps and r["lr"] == a.adamw_lr:
                known[(r["arch"], r["seed"])] = r["eval"]
    pipelines = ["overlapped", "sync"] if a.pipeline == "both" else [a.pipeline]
    series, table, settings = {}, [], []
    for arch in (["llama", "deepseek"] if a.arch == "both" else [a.arch]):
        per = {pl: resolve(a, arch, pl) for pl in pipelines}
        settings += [f"settings {arch} {pl}: chunk {b.chunk} selection {b.selection} k {b.topk}"
                     f" 1bit {not b.no_1bit} decay {b.decay} overlapped delay {b.delay} lookahead"
                     f" {not b.no_lookahead} seeds {b.seeds} distro lr {b.distro_lr} adamw lr {b.adamw_lr}"
                     f" cosine to lr/10, warmup {b.warmup}" for pl, b in per.items()]
        cfg = bench_config(arch, a.dim, a.layers, a.seq)
        dense = 4 * sum(p.numel() for p in build_model(cfg).parameters())
        print(f"[{arch}] params {dense // 4:,}  trainers {a.trainers}  steps {a.steps}"
              f"  tokens/step {a.trainers * a.batch * a.seq:,}", flush=True)
        adamw: dict[int, float] = {}
        rows: dict[str, list] = {pl: [] for pl in pipelines}
        for seed in a.seeds:
            if (arch, seed) in known:
                adamw[seed] = known[(arch, seed)]
            elif not a.no_adamw:
                t0 = time.perf_counter()
                w = run_adamw(cfg, data, a, seed)
                adamw[seed] = w["evals"][-1][1]
                record(a, arch, seed, "adamw", adamw[seed], None, time.perf_counter() - t0)
                series.setdefault(f"{arch} AdamW", ([s for s, _ in w["evals"]], [v for _, v in w["evals"]]))
            for pl in pipelines:
                t0 = time.perf_counter()
                d = run_distro(cfg, data, per[pl], seed, pl == "sync")
                dl = d["evals"][-1][1]
                record(per[pl], arch, seed, pl, dl, d, time.perf_counter() - t0, adamw.get(seed))
                rows[pl].append((seed, dl, d["bytes"]))
                series.setdefault(f"{arch} DisTrO {pl}", ([s for s, _ in d["evals"]], [v for _, v in d["evals"]]))
        for pl, rs in rows.items():
            ratios = [dl / adamw[s] for s, dl, _ in rs if s in adamw]
            nbytes = mean([b for _, _, b in rs])
            b = per[pl]
            table.append(f"| {arch} | {b.selection} {b.topk}/{b.chunk}**2 decay {b.decay:g} | {pl} | {b.distro_lr:g}"
                         f" | {nbytes:,.0f}"
                         f" | {dense / nbytes:,.0f}x | {' / '.join(f'{dl:.3f}' for _, dl, _ in rs)}"
                         f" | {' / '.join(f'{adamw[s]:.3f}' for s, _, _ in rs if s in adamw)}"
                         f" | {mean(ratios) if ratios else float('nan'):.3f} |")
    print("\n".join(settings))
    print("| arch | selection | pipeline | lr | bytes/trainer/step | vs dense fp32 | DisTrO eval per seed"
          " | AdamW eval per seed | mean ratio |")
    print("\n".join(table))
    for line in line_plot(a.png, series):
        print(f"plot {a.png}: {line}")


def summarize(path: Path, a: argparse.Namespace) -> list[str]:
    """The table of `--jsonl` records (runs made in parallel processes): per arch, DisTrO setting and pipeline,
    the mean over the seeds that have both a DisTrO and an AdamW run of the same length."""
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    adamw = {(r["arch"], r["seed"], r["steps"]): r["eval"] for r in recs if r["kind"] == "adamw"}
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        if r["kind"] != "adamw" and (r["arch"], r["seed"], r["steps"]) in adamw:
            groups.setdefault((r["arch"], r["selection"], r["k"], r["chunk"], r.get("decay", 0.99), r["lr"],
                               r["kind"], r["steps"]), []).append(r)
    out = ["| arch | selection | pipeline | lr | steps | bytes/trainer/step | vs dense fp32 | seeds"
           " | DisTrO eval per seed | AdamW eval per seed | mean ratio |", "|" + "---|" * 11]
    for (arch, sel, k, chunk, decay, lr, pl, steps), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])
        dense = 4 * sum(q.numel() for q in build_model(bench_config(arch, a.dim, a.layers, a.seq)).parameters())
        nbytes = mean([r["bytes"] for r in rs])
        ws = [adamw[(arch, r["seed"], steps)] for r in rs]
        setting = f"{sel} {k}/{chunk}x{chunk}" + ("" if decay == 0.99 else f" decay {decay:g}")
        out.append(f"| {arch} | {setting} | {pl} | {lr:g} | {steps} | {nbytes:,.0f}"
                   f" | {dense / nbytes:,.0f}x | {', '.join(str(r['seed']) for r in rs)}"
                   f" | {' / '.join(format(r['eval'], '.3f') for r in rs)} | {' / '.join(f'{w:.3f}' for w in ws)}"
                   f" | {mean([r['eval'] / w for r, w in zip(rs, ws, strict=True)]):.3f} |")
    return out


def record(a: argparse.Namespace, arch: str, seed: int, kind: str, loss: float, d: dict | None,
           secs: float, adamw: float | None = None) -> None:
    """One run's line on stdout, and in `--jsonl` for combining runs made in separate processes."""
    rec = {"arch": arch, "seed": seed, "kind": kind, "eval": loss, "steps": a.steps, "secs": round(secs, 1)}
    if d is None:
        rec["lr"] = a.adamw_lr
    else:
        rec.update(selection=a.selection, k=a.topk, chunk=a.chunk, decay=a.decay, lr=a.distro_lr, bytes=d["bytes"],
                   identical=d["identical"], ratio=None if adamw is None else loss / adamw)
    print(json.dumps(rec), flush=True)
    if a.jsonl:
        with open(a.jsonl, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
