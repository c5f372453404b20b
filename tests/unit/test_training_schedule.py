"""LR schedule values at the points that define them."""
from __future__ import annotations

import math

import pytest

from client.training.schedule import Constant, Cosine, Linear, WarmupStableDecay, schedule_from_dict


def test_constant_with_warmup() -> None:
    s = Constant(base_lr=1.0, warmup_init_lr=0.1, warmup_steps=10)
    assert [s(0), s(5), s(10), s(1000)] == pytest.approx([0.1, 0.55, 1.0, 1.0])


def test_linear() -> None:
    s = Linear(base_lr=1.0, final_lr=0.0, total_steps=110, warmup_steps=10)
    assert [s(5), s(10), s(60), s(110), s(500)] == pytest.approx([0.5, 1.0, 0.5, 0.0, 0.0])


def test_cosine() -> None:
    s = Cosine(base_lr=1.0, final_lr=0.1, total_steps=110, warmup_steps=10)
    assert [s(0), s(10), s(60), s(110), s(999)] == pytest.approx([0.0, 1.0, 0.55, 0.1, 0.1])
    assert s(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))


def test_warmup_stable_decay() -> None:
    s = WarmupStableDecay(base_lr=1.0, cosine_decay_final_lr=0.5, linear_decay_final_lr=0.1, warmup_steps=10,
                          stable_steps=20, cosine_decay_steps=10, linear_decay_steps=10)
    assert [s(5), s(10), s(29), s(30), s(35), s(40), s(45), s(50), s(99)] == pytest.approx(
        [0.5, 1.0, 1.0, 1.0, 0.75, 0.5, 0.3, 0.1, 0.1])


def test_schedule_from_dict_and_errors() -> None:
    assert schedule_from_dict({"kind": "constant", "base_lr": 0.5})(3) == 0.5
    with pytest.raises(ValueError, match="kind must be one of"):
        schedule_from_dict({"kind": "step"})
    with pytest.raises(ValueError, match="unknown key"):
        schedule_from_dict({"kind": "constant", "base_lr": 1, "gamma": 2})
    with pytest.raises(ValueError, match="non-negative"):
        schedule_from_dict({"kind": "constant", "base_lr": -1})
