"""The DisTrO (DeMo) optimizer: residual momentum, DCT top-k results, and the sign-SGD apply of peers' mean.

Per step and parameter (facts §6.3–6.4), with δ the residual, β the decay and η_t the learning rate:
    δ ← β·(δ − Q_{t−1}) + η_t·g        Q_{t−1} = what this trainer sent last step, decoded
    q_t = TopK(DCT(δ))                  → the result sent to peers (optionally 1-bit signs)
          or DCT(δ)[S_t]                  with `selection="shared"`: S_t the seeded draw every client shares
    p ← p·(1 − η_t·λ) − η_t·sign(IDCT(mean over peers of q_t))     (`apply`, run by every client)

Three deliberate differences from Psyche, the first two for bit-identical weights across clients:
* the look-ahead (p − α·η_{t−1}·sign(δ) before the forward pass) is undone by restoring a saved copy, not by
  adding the same amount back, which would leave ULP-sized differences that depend on the local δ;
* weight decay happens in `apply`, so the weights are a pure function of the initial weights and the
  sequence of result sets, whether or not this client trained in a round;
* the look-ahead moves half as far as Psyche's (α = LOOKAHEAD_SCALE = 0.5, Psyche 1): it stands in for the
  pending step's update, sign(IDCT(peers' mean)), which agrees with sign(δ) only in part, and a full step
  along sign(δ) overshoots. Measured (bench/distro_vs_adamw.py, overlapped pipeline, shared 14-15/256, 300
  steps, eval loss per seed): deepseek 1.823 / 1.792 / 1.784 at 0.5 against 1.916 / 1.873 / 1.892 at 1
  (seed 0: 2.343 at 0, 1.972 at 0.25, 1.808 at 0.7, 2.082 at 2); llama seed 0 1.721 at 0.5, 1.711 at 0.7,
  1.744 at 1. The synchronous pipeline has no look-ahead.
δ is kept in float32 whatever the model dtype, so a bf16 model's momentum does not lose its small terms.

The shared selection (issue 26): every trainer sends the same k coefficients of each block, drawn from
(run seed, step, parameter name) by `shared_indices`, so no indices travel and the peers' mean of each
chosen coefficient is a vote of all trainers, not mostly single ones. Q_{t−1} is then the full-precision
value of the chosen coefficients: the error feedback takes out exactly the part of δ that was sent.

The error-feedback state (δ and Q_{t−1}) is what a verifier needs, with the run's weights and the assigned
batch, to recompute a trainer's result: every result carries `ef`, the commitment to the state *before* its
step (`client/training/ef_parts.py`: the root of a Merkle tree of its DCT blocks, and the hash of δ's sign map
when the run trains with the look-ahead; `generate` computes it), so a trainer cannot serve a different state
later, and a verifier can fetch a few blocks with their proof instead of the whole state. The state after
step S is the one committed by its result of S+1: a verifier that recomputes S also checks that chain.
`state_bytes` / `load_state` serialize the whole state in one blob (format psyche-ef/1), for tools and tests.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import msgpack
import numpy as np
import torch
from torch import nn

from client.training.compress import SparseCoeffs, compress, on_device, scatter_mean, select, shared_indices, topk_for
from client.training.dct import ChunkPlan, decode, decode_sparse, encode, plan_for
from client.training.ef_parts import StateParts, split

SELECTIONS = ("topk", "shared")
LOOKAHEAD_SCALE = 0.5  # the look-ahead's step as a share of the previous step's learning rate (Psyche: 1)


@dataclass(frozen=True)
class DistroConfig:
    chunk: int = 64
    topk: int = 8
    decay: float = 0.999
    weight_decay: float = 0.0
    quantize_1bit: bool = True
    selection: str = "topk"  # "topk": own top-k per block, indices on the wire; "shared": seeded common draw
    seed: int = 0  # the run's seed of the shared draw (with the step and parameter name); unused by top-k

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if not 0 <= self.seed < 1 << 64:
            raise ValueError(f"seed must be an unsigned 64-bit integer, got {self.seed}")
        if self.chunk < 1 or self.topk < 1:
            raise ValueError(f"chunk and topk must be positive, got {self.chunk}, {self.topk}")
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {self.decay}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must not be negative, got {self.weight_decay}")


@dataclass(frozen=True)
class ParamLayout:
    """What a result must look like for one parameter of the local model."""

    name: str
    plan: ChunkPlan
    k: int


def result_layout(model: nn.Module, cfg: DistroConfig) -> dict[str, ParamLayout]:
    """The layout of every parameter's result. Built once per model shape and block setting (a verifier asks
    twice a check, every peer result is decoded against it), so each plan's cached shapes are computed once."""
    return dict(_layout(tuple((n, tuple(p.shape)) for n, p in model.named_parameters()), cfg.chunk, cfg.topk))


@functools.lru_cache(maxsize=16)
def _layout(shapes: tuple[tuple[str, tuple[int, ...]], ...], chunk: int, topk: int) -> dict[str, ParamLayout]:
    layout = {}
    for name, shape in shapes:
        plan = plan_for(shape, chunk)
        layout[name] = ParamLayout(name, plan, topk_for(plan, topk))
    return layout


@dataclass
class DistroResult:
    """One trainer's contribution for one step: sparse DCT coefficients of every parameter."""

    step: int
    params: dict[str, SparseCoeffs]
    quantized: bool
    ef: bytes = bytes(32)  # commitment to the trainer's error-feedback state before this step (`ef_parts`)
    sender: bytes = bytes(32)  # the P2P key the result is bound to on the wire (set by the codec)
    state: StateParts | None = field(default=None, repr=False)  # the trainer's own state (served in openings)


EF_FORMAT = "psyche-ef/1"


class Distro:
    def __init__(self, model: nn.Module, cfg: DistroConfig) -> None:
        self.cfg = cfg
        self.params = dict(model.named_parameters())
        self.layout = result_layout(model, cfg)
        self.delta = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self.params.items()}
        self.sent: dict[str, SparseCoeffs] | None = None
        self._stash: dict[str, torch.Tensor] | None = None
        # split and hash the state before each step (`ef`); a verifier's twin, which loaded a state whose
        # hashes it already checked, turns it off: ~1 ms of a recomputation on the demo's model
        self.commit = True
        # whether the commitment includes δ's sign map: only a run with the look-ahead needs it (`Trainer`)
        self.commit_signs = True
        # a verifier that knows δ on a few blocks only takes the look-ahead's sign(δ) from the sign map
        self.lookahead_signs: dict[str, torch.Tensor] | None = None
        # a verifier's twin that knows δ on a few parameters' blocks only: `generate` folds and extracts just
        # those (each parameter's step is independent of the others'), most of a ~5 ms generate on the demo's
        # model; its result and `sent` then hold those parameters only
        self.only: set[str] | None = None
        self.commit_cpu_s = 0.0  # the thread CPU the last step's commitment took (bench/verification.py)

    def reset(self) -> None:
        """Cold start (`zero_optim`): forget the residual and what was sent."""
        for d in self.delta.values():
            d.zero_()
        self.sent = None

    def state_bytes(self) -> bytes:
        """The error-feedback state, canonically: δ per parameter (f32, layout order) and Q_{t−1} (int64
        indices, f32 values) or nil before the first step."""
        delta = [d.detach().contiguous().cpu().numpy().astype("<f4").tobytes() for d in self.delta.values()]
        sent = None if self.sent is None else [
            [self.sent[n].idx.cpu().numpy().astype("<i8").tobytes(),
             self.sent[n].val.cpu().numpy().astype("<f4").tobytes()] for n in self.params]
        return msgpack.packb({"format": EF_FORMAT, "delta": delta, "sent": sent}, use_bin_type=True)

    def load_state(self, blob: bytes) -> None:
        """Inverse of `state_bytes`; raises ValueError on anything that does not fit this model."""
        try:
            env = msgpack.unpackb(blob, raw=False)
        except Exception as e:  # msgpack raises several unrelated exception types
            raise ValueError(f"error-feedback state is not msgpack: {e}") from None
        if not isinstance(env, dict) or env.get("format") != EF_FORMAT or set(env) != {"format", "delta", "sent"}:
            raise ValueError("error-feedback state has the wrong envelope")
        names = list(self.params)
        if not isinstance(env["delta"], list) or len(env["delta"]) != len(names):
            raise ValueError("error-feedback state holds the wrong number of parameters")
        sent_in = env["sent"]
        if sent_in is not None and (not isinstance(sent_in, list) or len(sent_in) != len(names)):
            raise ValueError("error-feedback state holds the wrong number of sent results")
        delta, sent = {}, {}
        for i, n in enumerate(names):
            d = self.delta[n]
            raw = env["delta"][i]
            if not isinstance(raw, bytes) or len(raw) != d.numel() * 4:
                raise ValueError(f"error-feedback state: delta of {n} has the wrong size")
            delta[n] = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(d.shape).to(d.device)
            if sent_in is not None:
                lay = self.layout[n]
                shape = (*lay.plan.blocks_shape, lay.k)
                count = int(np.prod(shape))
                idx_raw, val_raw = sent_in[i] if isinstance(sent_in[i], list) and len(sent_in[i]) == 2 else (b"", b"")
                if not isinstance(idx_raw, bytes) or not isinstance(val_raw, bytes) \
                        or len(idx_raw) != count * 8 or len(val_raw) != count * 4:
                    raise ValueError(f"error-feedback state: sent result of {n} has the wrong size")
                idx = torch.from_numpy(np.frombuffer(idx_raw, dtype="<i8").copy()).reshape(shape)
                if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= lay.plan.totalk):
                    raise ValueError(f"error-feedback state: sent index of {n} out of range")
                val = torch.from_numpy(np.frombuffer(val_raw, dtype="<f4").copy()).reshape(shape)
                sent[n] = SparseCoeffs(idx.to(d.device), val.to(d.device))
        for n, d in delta.items():
            self.delta[n].copy_(d)
        self.sent = sent if sent_in is not None else None

    @torch.no_grad()
    def lookahead(self, lr_prev: float) -> None:
        """Move to where the pending, not yet applied, updates will likely take the weights (`lr_prev` 0: the
        first step or the synchronous pipeline, nothing moves and no copy of the weights is kept)."""
        self._stash = None
        if lr_prev:
            self._stash = {n: p.detach().clone() for n, p in self.params.items()}
            for n, p in self.params.items():
                s = torch.sign(self.delta[n]) if self.lookahead_signs is None else self.lookahead_signs[n]
                p.sub_(s.to(p.device, p.dtype), alpha=LOOKAHEAD_SCALE * lr_prev)

    @torch.no_grad()
    def generate(self, step: int, lr: float) -> DistroResult:
        """Fold this step's gradients into δ and extract the result; gradients must be populated."""
        t0 = time.thread_time()
        before = split(self, self.commit_signs) if self.commit else None
        self.commit_cpu_s = time.thread_time() - t0
        if self._stash is not None:
            for n, p in self.params.items():
                p.copy_(self._stash[n])
            self._stash = None
        sent: dict[str, SparseCoeffs] = {}
        for n, p in self.params.items():
            if self.only is not None and n not in self.only:
                continue
            lay, d = self.layout[n], self.delta[n]
            if self.sent is not None:
                d.sub_(decode_sparse(self.sent[n].idx, self.sent[n].val, lay.plan))
            d.mul_(self.cfg.decay)
            if p.grad is not None:
                d.add_(p.grad.float(), alpha=lr)
            coeffs = encode(d, lay.plan)
            if self.cfg.selection == "shared":
                sent[n] = select(coeffs, shared_indices(self.cfg.seed, step, n, lay.plan, lay.k))
            else:
                sent[n] = compress(coeffs, lay.k)
        self.sent = sent
        out = {n: q.signs() for n, q in sent.items()} if self.cfg.quantize_1bit else dict(sent)
        ef = bytes(32) if before is None else before.ef
        return DistroResult(step, out, self.cfg.quantize_1bit, ef=ef, state=before)

    @staticmethod
    def _decode_mean(lay: ParamLayout, parts: list[SparseCoeffs], device: torch.device) -> torch.Tensor:
        """IDCT of the peers' scatter-mean. The mean is formed densely (so it does not depend on result
        order for 1-bit results); while it has few non-zeros per block it is decoded sparsely."""
        mean = scatter_mean(lay.plan, parts, device)
        if 8 * len(parts) * lay.k > lay.plan.totalk:
            return decode(mean, lay.plan)
        # the support of the mean: all sent indices, sorted (order-free), repeats given weight 0
        idx, _ = torch.cat([on_device(q.idx, device) for q in parts], dim=-1).sort(dim=-1)
        val = mean.gather(-1, idx)
        val[..., 1:][idx[..., 1:] == idx[..., :-1]] = 0.0
        return decode_sparse(idx, val, lay.plan)

    @torch.no_grad()
    def apply(self, results: list[DistroResult], lr: float) -> bool:
        """Sign-SGD step along the peers' mean; False (weights untouched) when there is nothing to apply."""
        if not results:
            return False
        for n, p in self.params.items():
            update = torch.sign(self._decode_mean(self.layout[n], [r.params[n] for r in results], p.device))
            if self.cfg.weight_decay:
                p.mul_(1.0 - lr * self.cfg.weight_decay)
            p.sub_(update.to(p.dtype), alpha=lr)
        return True
