"""One training step over a batch: micro-batched forward/backward, clipping, then DisTrO or AdamW.

The DisTrO path follows the protocol's order (facts §6.4): look-ahead, gradients, clip, `generate`;
`apply` of the peers' results is a separate call because it happens rounds later, when they arrive.
AdamW is the local baseline (§6.7) used to judge DisTrO's loss at equal tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from client.training.distro import Distro, DistroConfig, DistroResult
from client.training.model import Decoder
from client.training.schedule import Schedule


@dataclass
class StepOutput:
    loss: float
    grad_norm: float
    lr: float
    result: DistroResult | None


class Trainer:
    def __init__(self, model: Decoder, schedule: Schedule, optimizer: Literal["distro", "adamw"] = "distro",
                 distro: DistroConfig | None = None, micro_batch_size: int | None = None,
                 clip_grad_norm: float | None = 1.0, adamw_betas: tuple[float, float] = (0.9, 0.95),
                 adamw_weight_decay: float = 0.0, lookahead: bool = True) -> None:
        if optimizer not in ("distro", "adamw"):
            raise ValueError(f"optimizer must be distro or adamw, got {optimizer!r}")
        if micro_batch_size is not None and micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be positive, got {micro_batch_size}")
        self.model, self.schedule, self.kind = model, schedule, optimizer
        self.micro_batch_size, self.clip = micro_batch_size, clip_grad_norm
        self.use_lookahead = lookahead  # the protocol's default; off only for ablations
        self.distro = Distro(model, distro or DistroConfig()) if optimizer == "distro" else None
        if self.distro is not None:  # a verifier needs δ's sign map only to rebuild a look-ahead
            self.distro.commit_signs = lookahead
        self.adamw = torch.optim.AdamW(model.parameters(), lr=schedule(0), betas=adamw_betas,
                                       weight_decay=adamw_weight_decay) if optimizer == "adamw" else None

    def _backward(self, batch: torch.Tensor) -> float:
        """Gradients of the whole batch's mean loss, accumulated over micro-batches weighted by their rows."""
        batch = batch.to(self.device)  # token files load on the CPU; the model may live on a GPU
        rows = batch.shape[0]
        size = self.micro_batch_size or rows
        total = 0.0
        for start in range(0, rows, size):
            part = batch[start:start + size]
            loss = self.model.loss(part) * (part.shape[0] / rows)
            loss.backward()
            total += loss.item()
        return total

    def train_step(self, step: int, batch: torch.Tensor) -> StepOutput:
        if batch.dim() != 2 or batch.shape[1] < 2:
            raise ValueError(f"batch must be [rows, seq+1] tokens, got shape {list(batch.shape)}")
        lr = self.schedule(step)
        self.model.zero_grad(set_to_none=True)
        if self.distro is not None:
            self.distro.lookahead(self.schedule(step - 1) if step > 0 and self.use_lookahead else 0.0)
        loss = self._backward(batch)
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.clip if self.clip else float("inf")
        grad_norm = float(nn.utils.clip_grad_norm_(params, max_norm))
        result = None
        if self.distro is not None:
            result = self.distro.generate(step, lr)
        else:
            assert self.adamw is not None
            for group in self.adamw.param_groups:
                group["lr"] = lr
            self.adamw.step()
        self.model.zero_grad(set_to_none=True)
        return StepOutput(loss, grad_norm, lr, result)

    def apply(self, results: list[DistroResult], step: int) -> bool:
        """Apply the consensus results of `step` with that step's learning rate."""
        if self.distro is None:
            raise RuntimeError("apply is only for the DisTrO optimizer")
        return self.distro.apply(results, self.schedule(step))

    @torch.no_grad()
    def eval_loss(self, batch: torch.Tensor) -> float:
        return float(self.model.loss(batch.to(self.device)))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
