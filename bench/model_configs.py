"""Small model configs shared by the benches: a Llama (GQA) and a DeepSeek (MLA) of about the same size."""
from __future__ import annotations

from client.training.config import ModelConfig


def bench_config(arch: str, dim: int, layers: int, seq: int, heads: int = 4, ffn_multiple: int = 8) -> ModelConfig:
    """SwiGLU width ≈ 8/3·dim rounded down to `ffn_multiple`; GQA with half as many KV heads; MLA latents dim/2."""
    common = dict(vocab_size=256, dim=dim, n_layers=layers, n_heads=heads,
                  ffn_dim=dim * 8 // 3 // ffn_multiple * ffn_multiple, max_seq_len=seq)
    if arch == "llama":
        return ModelConfig(arch="llama", n_kv_heads=heads // 2, **common)
    return ModelConfig(arch="deepseek", q_lora_rank=dim // 2, kv_lora_rank=dim // 2, qk_nope_head_dim=dim // 8,
                       qk_rope_head_dim=dim // 16, v_head_dim=dim // 8, **common)
