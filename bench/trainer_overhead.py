"""Cost of a DisTrO training step over a plain torch loop on the same model and batch.

plain:  forward/backward + clip + torch AdamW step
DisTrO: look-ahead + forward/backward + clip + generate (residual, DCT, top-k) + wire encode/decode
        of the result + apply (IDCT of the mean, sign step)
Steps alternate between the two so machine noise hits both alike; the median of each is reported.

    .venv/bin/python -m bench.trainer_overhead [--arch llama|deepseek] [--dim 256] [--batches 8,32]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.model_configs import bench_config
from client.training.distro import DistroConfig, result_layout
from client.training.model import build_model
from client.training.result_codec import decode_result, encode_result
from client.training.schedule import Constant
from client.training.trainer import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["llama", "deepseek"], default="llama")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batches", default="8,32", help="sequences per step, comma-separated: DisTrO's cost is per"
                   " parameter, the forward/backward's per token, so the ratio falls as batches grow")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--chunk", type=int, default=16, help="DCT block target (16/1 is distro_vs_adamw's default)")
    p.add_argument("--topk", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--peers", type=int, default=4, help="results applied per step (own + copies standing in"
                   " for the other trainers' results, each decoded from the wire)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = bench_config(a.arch, a.dim, a.layers, a.seq, heads=8, ffn_multiple=64)
    dcfg = DistroConfig(chunk=a.chunk, topk=a.topk)
    sched = Constant(base_lr=1e-3)
    plain = Trainer(build_model(cfg, device=a.device), sched, "adamw")
    distro = Trainer(build_model(cfg, device=a.device), sched, "distro", dcfg)
    layout = result_layout(distro.model, dcfg)
    n_params = sum(p.numel() for p in plain.model.parameters())
    print(f"{a.arch} {n_params:,} params, {a.device}, {a.threads} threads, {a.steps} timed steps each,"
          f" DisTrO chunk {dcfg.chunk} top-k {dcfg.topk}, applies {a.peers} results per step")
    for rows in (int(b) for b in a.batches.split(",")):
        batch = torch.randint(0, cfg.vocab_size, (rows, a.seq + 1), generator=torch.Generator().manual_seed(0))
        tp, td = time_steps(plain, distro, layout, dcfg, batch.to(a.device), a)
        print(f"batch {rows}x{a.seq} = {rows * a.seq:,} tokens/step: plain torch (fwd/bwd + clip + AdamW)"
              f" {tp * 1000:.1f} ms, DisTrO (lookahead + fwd/bwd + clip + generate + wire codec + apply)"
              f" {td * 1000:.1f} ms, overhead ratio {td / tp:.3f} (goal <= 1.10)")


def time_steps(plain: Trainer, distro: Trainer, layout: dict, dcfg: DistroConfig, batch: torch.Tensor,
               a: argparse.Namespace) -> tuple[float, float]:
    """Median seconds per step of each, alternating so machine noise hits both alike."""
    def sync() -> None:
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    def plain_step(step: int) -> None:
        plain.train_step(step, batch)

    def distro_step(step: int) -> None:
        out = distro.train_step(step, batch)
        wire = encode_result(out.result, layout, dcfg)
        distro.apply([decode_result(wire, layout, dcfg) for _ in range(a.peers)], step)

    times: dict[str, list[float]] = {"plain": [], "distro": []}
    for step in range(a.steps + 2):
        for name, fn in (("plain", plain_step), ("distro", distro_step)):
            sync()
            t0 = time.perf_counter()
            fn(step)
            sync()
            if step >= 2:  # first steps allocate optimizer state and warm caches
                times[name].append(time.perf_counter() - t0)
    return statistics.median(times["plain"]), statistics.median(times["distro"])


if __name__ == "__main__":
    main()
