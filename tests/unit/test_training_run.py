"""Training runs: loss goes down, micro-batching is exact, clients stay bit-identical, and a golden curve.

The golden curve (torchtitan-style loss parity) pins the whole pipeline — pydoc tokens, model init, DCT,
top-k, 1-bit codec, delayed apply — to stored numbers. Regenerate after an intended change with
`PSYCHE_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_training_run.py -k golden` and say why in
the commit.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch
from training_helpers import llama_config, mla_config, pydoc_samples

from client.training.data import ShardedBatches
from client.training.distro import DistroConfig, result_layout
from client.training.model import build_model
from client.training.result_codec import decode_result, encode_result
from client.training.schedule import Constant
from client.training.trainer import Trainer

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "training_losses.json"
DCFG = DistroConfig(chunk=64, topk=8, decay=0.999)


# the shared selection (issue 26): every trainer sends the same seeded 15 of each 16x16 block's coefficients
SHARED = DistroConfig(chunk=16, topk=15, decay=0.99, selection="shared")
MODES = {"": (DCFG, 2, 2e-3), "-shared-sync": (SHARED, 1, 4e-3)}  # golden key suffix -> config, delay, lr


def _distro_run(cfg, steps: int, trainers: int = 2, delay: int = 2, lr: float = 2e-3,
                dcfg: DistroConfig = DCFG) -> tuple[list[float], list]:
    """K trainers exchanging results through the wire codec; returns mean train losses and the trainers.
    `delay` 2: results applied two steps late (the overlapped pipeline, with the look-ahead); 1: before the
    next step trains (the synchronous pipeline: nothing pending, no look-ahead, as the runner trains it)."""
    data = ShardedBatches(pydoc_samples(), trainers)
    base = build_model(cfg, seed=0)
    sched = Constant(base_lr=lr, warmup_steps=5)
    ts = [Trainer(copy.deepcopy(base), sched, "distro", dcfg, lookahead=delay > 1) for _ in range(trainers)]
    layout, pending, losses = result_layout(base, dcfg), {}, []
    for step in range(steps):
        if step - delay in pending:
            ready = pending.pop(step - delay)
            for t in ts:
                t.apply(ready, step - delay)
        outs = [t.train_step(step, data.batch(i, step, 4)) for i, t in enumerate(ts)]
        pending[step] = [decode_result(encode_result(o.result, layout, dcfg), layout, dcfg) for o in outs]
        losses.append(sum(o.loss for o in outs) / trainers)
    return losses, ts


def test_adamw_baseline_loss_goes_down() -> None:
    # 15 steps are enough: the loss is down ~1.7 after 12 (30 steps, as before, only made it slower)
    data = ShardedBatches(pydoc_samples(), 1)
    t = Trainer(build_model(llama_config()), Constant(base_lr=3e-3), "adamw")
    losses = [t.train_step(s, data.batch(0, s, 8)).loss for s in range(15)]
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0


def test_micro_batching_gives_the_full_batch_gradient() -> None:
    batch = pydoc_samples()[:7]
    grads = []
    for micro in (None, 2, 3):
        model = build_model(llama_config(), seed=1)
        t = Trainer(model, Constant(base_lr=0.0), "adamw", micro_batch_size=micro, clip_grad_norm=None)
        t._backward(batch)
        grads.append([p.grad.clone() for p in model.parameters()])
    for other in grads[1:]:
        for a, b in zip(grads[0], other, strict=True):
            assert torch.allclose(a, b, atol=1e-6)


def test_trainers_and_an_observer_end_bit_identical() -> None:
    """Same results in the same order → same weights, for trainers and for a client that only applies."""
    losses, ts = _distro_run(mla_config(), 8, trainers=3, delay=1)
    ref = ts[0].model.state_dict()
    for t in ts[1:]:
        for k, v in t.model.state_dict().items():
            assert torch.equal(ref[k], v), k
    assert not torch.equal(ref["head.weight"], build_model(mla_config(), seed=0).head.weight)


@pytest.mark.parametrize("quantize", [True, False])
def test_result_order(quantize: bool) -> None:
    """1-bit results: peers' ±1 sums are exact in float32, so arrival order cannot matter (bit-identical).
    Full-value results: sums round differently per order, so clients must apply in one agreed order."""
    cfg = DistroConfig(chunk=64, topk=8, quantize_1bit=quantize)
    model = build_model(llama_config(), seed=0)
    data = ShardedBatches(pydoc_samples(), 3)
    ts = [Trainer(copy.deepcopy(model), Constant(base_lr=1e-3), "distro", cfg) for _ in range(3)]
    results = [t.train_step(0, data.batch(i, 0, 4)).result for i, t in enumerate(ts)]
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    Trainer(a, Constant(base_lr=1e-3), "distro", cfg).apply(results, 0)
    Trainer(b, Constant(base_lr=1e-3), "distro", cfg).apply(results[::-1], 0)
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        if quantize:
            assert torch.equal(x, y)
        else:
            assert torch.allclose(x, y, atol=2.1e-3)  # at most a sign flip of a near-zero coefficient


def test_bad_batch_shape_is_rejected() -> None:
    t = Trainer(build_model(llama_config()), Constant(base_lr=1e-3), "distro")
    with pytest.raises(ValueError, match="batch must be"):
        t.train_step(0, torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("arch", ["llama", "deepseek"])
def test_distro_loss_goes_down_and_matches_the_golden_curve(arch: str, mode: str) -> None:
    """DisTrO training learns (checked on the run itself, so it holds whatever the stored curve says: the
    mean of the last 5 of 24 steps is > 1.0 below the first; it is ~1.5), and the run stays on the golden
    curve. This run replaced a separate 40-step "loss goes down" run (a third of the fast loop's time).
    Two modes: own top-k applied two steps late (Psyche's), and the shared selection applied before the next
    step (issue 26's best setting)."""
    torch.set_num_threads(2)
    dcfg, delay, lr = MODES[mode]
    losses, _ = _distro_run(llama_config() if arch == "llama" else mla_config(), 24, delay=delay, lr=lr, dcfg=dcfg)
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0, losses
    stored = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("PSYCHE_REGEN_GOLDEN"):
        stored[arch + mode] = [round(v, 5) for v in losses]
        GOLDEN.write_text(json.dumps(stored, indent=1) + "\n")
    golden = stored[arch + mode]
    assert len(golden) == len(losses)
    diffs = [abs(a - b) for a, b in zip(losses, golden, strict=True)]
    worst = max(diffs)
    assert worst < 0.05, f"{arch}: loss left the golden curve by {worst:.4f} at step {diffs.index(worst)}"
    assert sum(diffs) / len(diffs) < 0.01


def test_training_on_a_local_hf_tokenizer(tmp_path) -> None:
    from data_helpers import tiny_hf_tokenizer

    from client.training.config import ModelConfig
    from client.training.data import load_samples, prepare_corpus
    from data_providers.tokenizer import load_tokenizer

    tok_path = tiny_hf_tokenizer(tmp_path / "tokenizer.json")
    samples = load_samples(prepare_corpus(tmp_path / "tokens", 16, tokenizer=str(tok_path)), 16)
    vocab = load_tokenizer(str(tok_path)).vocab_size
    assert samples.shape[1] == 17 and int(samples.max()) < vocab
    cfg = ModelConfig.from_dict(llama_config().to_dict() | {"vocab_size": vocab, "max_seq_len": 16})
    t = Trainer(build_model(cfg), Constant(base_lr=3e-3), "adamw")
    losses = [t.train_step(s, samples[s * 8:(s + 1) * 8]).loss for s in range(15)]
    assert losses[-1] < losses[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)")
def test_cuda_trainers_stay_bit_identical_and_track_the_cpu_run() -> None:
    """On one GPU, same results in the same order → same weights; the GPU run follows the CPU one closely."""
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    data = ShardedBatches(pydoc_samples(), 2)
    base = build_model(llama_config(), seed=0)
    layout = result_layout(base, DCFG)
    runs = {}
    for device in ("cpu", "cuda"):
        ts = [Trainer(copy.deepcopy(base).to(device), Constant(base_lr=2e-3), "distro", DCFG) for _ in range(2)]
        for step in range(4):
            outs = [t.train_step(step, data.batch(i, step, 4)) for i, t in enumerate(ts)]
            wires = [encode_result(o.result, layout, DCFG) for o in outs]
            for t in ts:
                t.apply([decode_result(w, layout, DCFG) for w in wires], step)
        for k, v in ts[0].model.state_dict().items():
            assert torch.equal(v, ts[1].model.state_dict()[k]), k
        runs[device] = ts[0].eval_loss(data.eval)
    assert abs(runs["cpu"] - runs["cuda"]) < 0.05
