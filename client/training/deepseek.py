"""DeepSeek-V3-style attention and feed-forward: Multi-head Latent Attention and a routed mixture of experts.

MLA caches one low-rank latent per token instead of per-head keys and values: keys/values are decompressed
from a `kv_lora_rank` latent, and position enters only through a separate `qk_rope_head_dim` key that is
shared by all heads ("decoupled RoPE"), so the latent itself stays position-free and compressible.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from client.training.config import ModelConfig
from client.training.layers import RMSNorm, SwiGLU, apply_rope


class MultiHeadLatentAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.nope, self.rope, self.v_dim = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
        self.kv_rank = cfg.kv_lora_rank
        q_out = cfg.n_heads * (self.nope + self.rope)
        if cfg.q_lora_rank:
            self.wq_a = nn.Linear(cfg.dim, cfg.q_lora_rank, bias=False)
            self.q_norm = RMSNorm(cfg.q_lora_rank, cfg.norm_eps)
            self.wq_b = nn.Linear(cfg.q_lora_rank, q_out, bias=False)
        else:
            self.wq = nn.Linear(cfg.dim, q_out, bias=False)
        self.wkv_a = nn.Linear(cfg.dim, self.kv_rank + self.rope, bias=False)
        self.kv_norm = RMSNorm(self.kv_rank, cfg.norm_eps)
        self.wkv_b = nn.Linear(self.kv_rank, cfg.n_heads * (self.nope + self.v_dim), bias=False)
        self.wo = nn.Linear(cfg.n_heads * self.v_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq_b(self.q_norm(self.wq_a(x))) if hasattr(self, "wq_a") else self.wq(x)
        q = q.view(b, t, self.n_heads, self.nope + self.rope).transpose(1, 2)
        q_nope, q_pe = q.split([self.nope, self.rope], dim=-1)
        latent, k_pe = self.wkv_a(x).split([self.kv_rank, self.rope], dim=-1)
        kv = self.wkv_b(self.kv_norm(latent)).view(b, t, self.n_heads, self.nope + self.v_dim).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)
        k_pe = apply_rope(k_pe.unsqueeze(1), cos, sin).expand(b, self.n_heads, t, self.rope)
        q = torch.cat([q_nope, apply_rope(q_pe, cos, sin)], dim=-1)
        k = torch.cat([k_nope, k_pe], dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(b, t, self.n_heads * self.v_dim))


class MixtureOfExperts(nn.Module):
    """Sigmoid-scored top-k routing over routed experts plus always-on shared experts (DeepSeek-V3).

    Tokens are gathered per expert, so compute scales with experts_per_token, not n_routed_experts.
    No auxiliary balance loss, as in Psyche's native DeepSeek.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.top_k = cfg.experts_per_token
        self.gate = nn.Linear(cfg.dim, cfg.n_routed_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(cfg.dim, cfg.moe_ffn_dim) for _ in range(cfg.n_routed_experts))
        self.shared = SwiGLU(cfg.dim, cfg.moe_ffn_dim * cfg.n_shared_experts) if cfg.n_shared_experts else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        scores = torch.sigmoid(self.gate(flat).float())
        weights, chosen = scores.topk(self.top_k, dim=-1)
        weights = (weights / weights.sum(-1, keepdim=True)).to(x.dtype)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token_idx, slot = (chosen == e).nonzero(as_tuple=True)
            if token_idx.numel():
                out.index_add_(0, token_idx, expert(flat[token_idx]) * weights[token_idx, slot, None])
            else:  # keep every expert in the graph so all parameters get a (zero) gradient each step
                out = out + 0.0 * expert(flat[:1]).sum()
        if self.shared is not None:
            out = out + self.shared(flat)
        return out.view(shape)
