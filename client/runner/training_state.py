"""What a client holds between phases: the model and its trainer, the data provider, and the per-step book
of results (who trained each step, what they delivered, what was applied).

Why separate from the phases: every phase reads and writes this, and a test can inspect it (the weights a
client holds, what it applied) without driving a whole run.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from client.runner.result_checks import ResultMemory
from client.runner.run_model import TrainingPlan
from client.training.distro import DistroResult
from client.training.trainer import Trainer


def weights_sha256(model: Any) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


@dataclass
class TrainingState:
    plan: TrainingPlan | None = None
    device: str = "cpu"
    model: Any = None
    digest: bytes | None = None  # manifest digest of the weights held when they were loaded or checkpointed
    trainer: Trainer | None = None
    provider: Any = None
    warm_epoch: int | None = None  # the epoch whose warmup this process took part in
    published: bytes | None = None  # manifest hash of the checkpoint we serve to peers
    losses: list[tuple[int, float]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    last_train_s: float = 0.0
    simulated_steps: int = 0  # steps whose result was simulated (no loss measured)


@dataclass
class RoundBook:
    """Per step: the trainers (p2p key, signer) fixed at the round's start, the results we hold, and how many
    results were applied (each step's consensus is applied once)."""
    trainers_of: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    results: dict[int, dict[bytes, DistroResult]] = field(default_factory=dict)
    applied: dict[int, int] = field(default_factory=dict)
    checks: ResultMemory = field(default_factory=ResultMemory)  # copies and replays (result_checks.py)

    def clear(self) -> None:
        self.trainers_of.clear()
        self.results.clear()
        self.applied.clear()

    def forget(self, step: int) -> None:
        """Drop what no later round can need (results of S-3 and older, applied marks of S-5 and older)."""
        for old in [s for s in self.results if s < step - 2]:
            del self.results[old]
        for old in [s for s in self.applied if s < step - 4]:
            del self.applied[old]
        for old in [s for s in self.trainers_of if s < step - 4]:
            del self.trainers_of[old]
