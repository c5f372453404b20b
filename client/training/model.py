"""One decoder for both architectures: blocks differ only in their attention and feed-forward modules."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from client.training.config import ModelConfig
from client.training.deepseek import MixtureOfExperts, MultiHeadLatentAttention
from client.training.layers import RMSNorm, SwiGLU, rope_tables
from client.training.llama import GroupedQueryAttention


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        if cfg.arch == "llama":
            self.attn: nn.Module = GroupedQueryAttention(cfg)
            self.ffn: nn.Module = SwiGLU(cfg.dim, cfg.ffn_dim)
        else:
            self.attn = MultiHeadLatentAttention(cfg)
            moe = cfg.n_routed_experts and layer >= cfg.first_dense_layers
            self.ffn = MixtureOfExperts(cfg) if moe else SwiGLU(cfg.dim, cfg.ffn_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class Decoder(nn.Module):
    """Pre-norm decoder; untied embedding and output head (tied weights would be one tensor, two names)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        rope_dim = cfg.head_dim if cfg.arch == "llama" else cfg.qk_rope_head_dim
        cos, sin = rope_tables(rope_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        if t > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {t} exceeds max_seq_len {self.cfg.max_seq_len}")
        x = self.embed(tokens)
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.head(self.norm(x))

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy of a [batch, seq+1] token block, computed in fp32."""
        logits = self(batch[:, :-1])
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1).long())


def build_model(cfg: ModelConfig, seed: int = 0, device: str | torch.device = "cpu") -> Decoder:
    """Same seed → same weights on every client, without touching the global RNG of the caller."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Decoder(cfg)
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                std = cfg.init_std / (2 * cfg.n_layers) ** 0.5 if name.endswith(("wo.weight", "w2.weight")) \
                    else cfg.init_std
                nn.init.normal_(p, mean=0.0, std=std)
    return model.to(device=device, dtype=cfg.torch_dtype)
