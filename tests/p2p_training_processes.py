"""Several trainers, each its own OS process with its own iroh node, train one model with DisTrO over P2P.

What the clients will do inside a run, minus the chain: every trainer trains on its shard of real text,
puts its compressed result in its blob store and gossips the sha256 commitment (signed with its P2P key),
gathers the other trainers' results (blob fetch from the announcer, then from anyone who has it),
validates each against its commitment, the step and the local model, and applies the set in sender-key
order two steps late, as the protocol does. At the end every process prints the sha256 of its weights:
they must all be equal, or the demo fails. Membership is a static list here; in a run it is the epoch's
clients read from the coordinator account (`EpochMembers.refresh`).

    scripts/loopback-only .venv/bin/python tests/p2p_training_processes.py --trainers 3 --steps 30
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing only: the launcher process does not start iroh
    from client.p2p.result_exchange import ResultExchange

RUN_ID = "p2p-training-demo"
DELAY = 2  # a round's results are applied two steps later (round t trains on weights holding ≤ t−2)


def free_udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def weights_digest(model: object) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):  # type: ignore[attr-defined]
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


async def _wait_reachable(node: object, keys: list[bytes], alpn: bytes, timeout: float) -> None:
    """Dial every peer until it answers: the processes start at different times."""
    from client.p2p.node import PeerUnreachable

    deadline = time.monotonic() + timeout
    for key in keys:
        while True:
            try:
                await node.connect(key, alpn)  # type: ignore[attr-defined]
                break
            except PeerUnreachable:
                if time.monotonic() > deadline:
                    raise SystemExit(f"peer {key.hex()[:10]} never answered within {timeout}s") from None
                await asyncio.sleep(0.2)


async def run_trainer(a: argparse.Namespace) -> None:
    import torch

    import client.p2p  # noqa: F401  (applies the FFI write patch)
    from client.p2p.allowlist import StaticMembers
    from client.p2p.blobs import BlobService
    from client.p2p.gossip import GOSSIP_ALPN, Gossip
    from client.p2p.identity import P2PIdentity
    from client.p2p.node import P2PNode
    from client.p2p.result_exchange import ResultExchange
    from client.training.config import ModelConfig
    from client.training.data import ShardedBatches, load_samples
    from client.training.distro import DistroConfig, result_layout
    from client.training.model import build_model
    from client.training.result_codec import encode_result
    from client.training.schedule import Cosine
    from client.training.trainer import Trainer

    torch.set_num_threads(1)
    keys = [P2PIdentity.from_keypair_file(p) for p in a.keys.split(",")]
    ports = [int(p) for p in a.ports.split(",")]
    me = keys[a.index]
    node = P2PNode(me, StaticMembers({k.public for k in keys}), bind_addr=f"127.0.0.1:{ports[a.index]}")
    gossip = Gossip(node, RUN_ID, fanout=2, rebroadcast_s=0.5)
    blobs = BlobService(node)
    await node.start()
    gossip.start()
    others = [k.public for i, k in enumerate(keys) if i != a.index]
    for i, k in enumerate(keys):
        if i != a.index:
            node.add_peer(k.public, f"127.0.0.1:{ports[i]}")
    await _wait_reachable(node, others, GOSSIP_ALPN, 60.0)
    await gossip.join()

    cfg = ModelConfig(arch=a.arch, vocab_size=256, dim=a.dim, n_layers=2, n_heads=4, ffn_dim=2 * a.dim,
                      max_seq_len=a.seq,
                      **({"n_kv_heads": 2} if a.arch == "llama" else
                         {"q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
                          "v_head_dim": 16}))
    dcfg = DistroConfig(chunk=16, topk=1, decay=0.99)  # the best setting of bench/distro_vs_adamw.py
    model = build_model(cfg, seed=0)  # the run's initial weights: the same everywhere
    layout = result_layout(model, dcfg)
    trainer = Trainer(model, Cosine(base_lr=2e-3, final_lr=2e-4, warmup_steps=3, total_steps=a.steps), "distro", dcfg)
    data = ShardedBatches(load_samples(a.tokens, a.seq), len(keys))
    exchange = ResultExchange(gossip, blobs, layout, dcfg)
    trainers = {k.public for k in keys}
    pending: dict[int, list] = {}
    for step in range(a.steps + DELAY):
        gossip.set_step(step)
        if step < a.steps:
            out = trainer.train_step(step, data.batch(a.index, step, a.batch))
            wire = encode_result(out.result, layout, dcfg, sender=me.public)
            await exchange.publish(step, wire)
            got = await exchange.gather(step, trainers, timeout=60.0)
            pending[step] = [r for _, r in got]
            print(json.dumps({"trainer": a.index, "step": step, "loss": round(out.loss, 4), "bytes": len(wire),
                              "results": len(got)}), flush=True)
        ready = pending.pop(step - DELAY, None)
        if ready:
            trainer.apply(ready, step - DELAY)
        blobs.store.gc(step, keep_steps=DELAY)
    eval_loss = round(trainer.eval_loss(data.eval), 4)
    print(json.dumps({"trainer": a.index, "done": True, "weights_sha256": weights_digest(model),
                      "eval_loss": eval_loss, "rejected": {k.hex()[:10]: v for k, v in exchange.rejected.items()},
                      "gossip_dropped": {k: v for k, v in gossip.dropped.items() if v}}), flush=True)
    await _finish_together(exchange, set(others), a.steps + DELAY - 1)  # the last step we were at
    await node.close()


async def _finish_together(exchange: ResultExchange, others: set[bytes], step: int, timeout: float = 30.0) -> None:
    """Announce we are done and stay up (serving our blobs) until every peer is done too, or `timeout`.

    Seeing every peer's 'done' is not enough to leave: our own 'done' may still sit unread in a peer's
    stream buffer (its event loop was busy training), and closing our connections discards it, leaving
    that peer waiting the whole timeout. So we stay `linger` seconds more, during which gossip re-sends
    our 'done' every `rebroadcast_s` to peers that by then are idle in this same wait.
    """
    gossip = exchange.gossip
    await gossip.publish("done", b"", step=step)
    def done() -> set[bytes]:
        exchange.drain()
        return {m.sender for m in exchange.other_messages if m.kind == "done"}

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if others <= done():
            linger = max(1.0, 3 * gossip.rebroadcast_s)
            await asyncio.sleep(min(linger, max(0.0, deadline - time.monotonic())))
            return
        await asyncio.sleep(0.05)
    missing = ", ".join(sorted(k.hex()[:10] for k in others - done()))
    print(f"trainer stops after {timeout}s without the 'done' of {missing}", file=sys.stderr, flush=True)


def launch(a: argparse.Namespace) -> int:
    from solders.keypair import Keypair

    from client.training.data import prepare_corpus
    from coordinator_sdk.keypair_file import write_keypair

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(a.trainers):
            paths.append(Path(tmp) / f"p2p-{i}.json")
            write_keypair(paths[-1], Keypair())
        tokens = prepare_corpus(Path(tmp) / "pydoc", a.seq)
        ports = free_udp_ports(a.trainers)
        print(f"{a.trainers} trainer processes, {a.arch} model, {a.steps} steps, {a.batch}×{a.seq} tokens each "
              f"per step, results applied {DELAY} steps late; iroh on 127.0.0.1 ports {ports}", flush=True)
        argv = ["--keys", ",".join(map(str, paths)), "--ports", ",".join(map(str, ports)), "--tokens", str(tokens),
                "--steps", str(a.steps), "--batch", str(a.batch), "--seq", str(a.seq), "--arch", a.arch,
                "--dim", str(a.dim)]
        procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--index", str(i), *argv],
                                  stdout=subprocess.PIPE, text=True) for i in range(a.trainers)]
        deadline = time.monotonic() + a.timeout
        try:
            outs = [p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0] for p in procs]
        except subprocess.TimeoutExpired:
            print(f"the trainers did not finish within {a.timeout}s: the demo failed", file=sys.stderr)
            return 1
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        codes = [p.returncode for p in procs]
    if any(codes):
        print(f"trainer exit codes {codes}: the demo failed", file=sys.stderr)
        return 1
    lines = [[json.loads(line) for line in out.splitlines()] for out in outs]
    for step in range(a.steps):
        rows = [r for per in lines for r in per if r.get("step") == step]
        print(f"step {step:3d}  mean train loss {sum(r['loss'] for r in rows) / len(rows):.4f}  "
              f"results gathered {min(r['results'] for r in rows)}/{a.trainers}  "
              f"result bytes {max(r['bytes'] for r in rows):,}")
    finals = [per[-1] for per in lines]
    for f in finals:
        print(f"trainer {f['trainer']}: held-out loss {f['eval_loss']}  weights sha256 {f['weights_sha256'][:16]}…"
              f"  rejected {f['rejected'] or 'none'}  gossip drops {f['gossip_dropped'] or 'none'}")
    same = len({f["weights_sha256"] for f in finals}) == 1
    print("all trainers hold bit-identical weights" if same else "TRAINERS DIVERGED: weights differ")
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainers", type=int, default=3)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=4, help="sequences per trainer per step")
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--arch", choices=["llama", "deepseek"], default="llama")
    p.add_argument("--dim", type=int, default=128, help="model width (2 layers, 4 heads)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before unfinished trainers are killed")
    for hidden in ("--index", "--keys", "--ports", "--tokens"):  # set by the launcher for each trainer process
        p.add_argument(hidden, help=argparse.SUPPRESS, type=int if hidden == "--index" else str)
    a = p.parse_args(argv)
    if a.index is not None:
        asyncio.run(run_trainer(a))
        return 0
    if not 2 <= a.trainers <= 16 or a.steps < 1 or a.batch < 1 or a.seq < 2 or a.dim < 16 or a.dim % 16 \
            or a.timeout <= 0:
        p.error("need 2..16 trainers, at least 1 step, batch ≥ 1, seq ≥ 2, dim a multiple of 16, timeout > 0")
    from devtools.netns import loopback_only

    if not loopback_only():
        p.error("run inside the loopback-only namespace (scripts/loopback-only): it starts iroh endpoints")
    return launch(a)


if __name__ == "__main__":
    sys.exit(main())
