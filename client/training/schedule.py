"""Learning-rate schedules (Psyche `definitions.rs`, facts §6.5), each with a linear warmup.

Every schedule is a pure function of the step so all clients agree on the rate without talking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


def _warmup(step: int, init: float, base: float, warmup_steps: int) -> float:
    return init + (base - init) * step / warmup_steps


def _cosine(progress: float, base: float, final: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True, kw_only=True)
class _Warmup:
    """Linear warmup from `warmup_init_lr` to `base_lr`, then the subclass's curve."""

    base_lr: float
    warmup_init_lr: float = 0.0
    warmup_steps: int = 0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.warmup_init_lr, self.base_lr, self.warmup_steps)
        return self.after_warmup(step)

    def after_warmup(self, step: int) -> float:
        return self.base_lr

    def progress(self, step: int, total_steps: int) -> float:
        return min((step - self.warmup_steps) / max(total_steps - self.warmup_steps, 1), 1.0)


@dataclass(frozen=True, kw_only=True)
class Constant(_Warmup):
    pass


@dataclass(frozen=True, kw_only=True)
class Linear(_Warmup):
    final_lr: float
    total_steps: int

    def after_warmup(self, step: int) -> float:
        return self.base_lr + (self.final_lr - self.base_lr) * self.progress(step, self.total_steps)


@dataclass(frozen=True, kw_only=True)
class Cosine(_Warmup):
    final_lr: float
    total_steps: int

    def after_warmup(self, step: int) -> float:
        return _cosine(self.progress(step, self.total_steps), self.base_lr, self.final_lr)


@dataclass(frozen=True, kw_only=True)
class WarmupStableDecay(_Warmup):
    """Warmup, a flat stretch, a cosine decay, then a linear decay to the end (the WSD shape)."""

    cosine_decay_final_lr: float
    linear_decay_final_lr: float
    stable_steps: int
    cosine_decay_steps: int
    linear_decay_steps: int

    def after_warmup(self, step: int) -> float:
        s = step - self.warmup_steps - self.stable_steps
        if s < 0:
            return self.base_lr
        if s < self.cosine_decay_steps:
            return _cosine(s / self.cosine_decay_steps, self.base_lr, self.cosine_decay_final_lr)
        s -= self.cosine_decay_steps
        progress = min(s / self.linear_decay_steps, 1.0) if self.linear_decay_steps else 1.0
        return self.cosine_decay_final_lr + (self.linear_decay_final_lr - self.cosine_decay_final_lr) * progress


SCHEDULES = {"constant": Constant, "linear": Linear, "cosine": Cosine, "wsd": WarmupStableDecay}
Schedule = Constant | Linear | Cosine | WarmupStableDecay


def schedule_from_dict(raw: dict[str, Any]) -> Schedule:
    """`{"kind": "cosine", "base_lr": ..., ...}` → a schedule; unknown kinds and keys are named in the error."""
    raw = dict(raw)
    kind = raw.pop("kind", None)
    if kind not in SCHEDULES:
        raise ValueError(f"schedule kind must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    cls = SCHEDULES[kind]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{kind} schedule: unknown key(s) {', '.join(unknown)}")
    try:
        sched = cls(**raw)
    except TypeError as e:  # a missing required key
        raise ValueError(f"{kind} schedule: {e}") from None
    for f in fields(sched):
        v = getattr(sched, f.name)
        if not isinstance(v, int | float) or v < 0:
            raise ValueError(f"{kind} schedule: {f.name} must be a non-negative number, got {v!r}")
    return sched
