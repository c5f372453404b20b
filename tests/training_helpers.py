"""Tiny model configs and a cached pydoc sample pool shared by the training tests."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch

from client.training.config import ModelConfig
from client.training.data import load_samples, prepare_corpus

SEQ = 32


def llama_config(**over: object) -> ModelConfig:
    base = dict(arch="llama", vocab_size=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128,
                max_seq_len=SEQ)
    base.update(over)
    return ModelConfig(**base)  # type: ignore[arg-type]


def mla_config(**over: object) -> ModelConfig:
    base = dict(arch="deepseek", vocab_size=256, dim=64, n_layers=2, n_heads=4, ffn_dim=128, max_seq_len=SEQ,
                q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
    base.update(over)
    return ModelConfig(**base)  # type: ignore[arg-type]


def moe_config() -> ModelConfig:
    return mla_config(n_routed_experts=4, n_shared_experts=1, experts_per_token=2, moe_ffn_dim=32,
                      first_dense_layers=1)


@functools.cache
def pydoc_samples(seq: int = SEQ) -> torch.Tensor:
    with tempfile.TemporaryDirectory() as tmp:
        return load_samples(prepare_corpus(Path(tmp) / "pydoc", seq), seq)
