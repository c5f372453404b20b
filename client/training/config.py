"""Model configuration as strict JSON: unknown keys, wrong types and impossible shapes are rejected up front.

A config arrives from peers and checkpoints, so it is validated like any other untrusted input: a bad
value must fail here with the field's name, not later as a shape error deep inside a forward pass.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

ARCHS = ("llama", "deepseek")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class ConfigError(ValueError):
    """A model config that cannot describe a buildable model."""


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    max_seq_len: int
    n_kv_heads: int = 0  # llama: grouped-query attention; 0 means n_heads
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    dtype: str = "float32"
    init_std: float = 0.02
    # DeepSeek Multi-head Latent Attention; q_lora_rank 0 means a full-rank query projection
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # DeepSeek mixture of experts; n_routed_experts 0 means every layer is a dense SwiGLU
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    experts_per_token: int = 0
    moe_ffn_dim: int = 0
    first_dense_layers: int = 0

    def __post_init__(self) -> None:
        validate(self)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "config") -> ModelConfig:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
        missing = sorted(n for n, f in known.items()
                         if f.default is dataclasses.MISSING and n not in raw)
        if missing:
            raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
        types = {"str": str, "int": int, "float": float}
        for name, value in raw.items():
            want = types[str(known[name].type)]
            ok = isinstance(value, want) or (want is float and isinstance(value, int))
            if isinstance(value, bool) or not ok:
                raise ConfigError(f"{where}: {name} must be {want.__name__}, got {value!r}")
        try:
            return cls(**raw)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    @classmethod
    def from_json(cls, text: str, where: str = "config") -> ModelConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: not valid JSON: {e}") from None
        return cls.from_dict(raw, where)

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read model config: {e.strerror}") from None
        return cls.from_json(text, str(path))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")


def _positive(cfg: ModelConfig, *names: str) -> None:
    for n in names:
        if getattr(cfg, n) < 1:
            raise ConfigError(f"{n} must be positive, got {getattr(cfg, n)}")


def validate(cfg: ModelConfig) -> None:
    if cfg.arch not in ARCHS:
        raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {cfg.arch!r}")
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")
    _positive(cfg, "vocab_size", "dim", "n_layers", "n_heads", "ffn_dim", "max_seq_len")
    if not (cfg.rope_theta > 0 and cfg.norm_eps > 0 and cfg.init_std > 0):
        raise ConfigError("rope_theta, norm_eps and init_std must be positive")
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, int) and v < 0:
            raise ConfigError(f"{f.name} must not be negative, got {v}")
    if cfg.arch == "llama":
        if cfg.dim % cfg.n_heads:
            raise ConfigError(f"dim {cfg.dim} is not a multiple of n_heads {cfg.n_heads}")
        if cfg.head_dim % 2:
            raise ConfigError(f"head_dim {cfg.head_dim} must be even for RoPE")
        if cfg.n_heads % cfg.kv_heads:
            raise ConfigError(f"n_heads {cfg.n_heads} is not a multiple of n_kv_heads {cfg.kv_heads}")
    else:
        _positive(cfg, "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
        if cfg.qk_rope_head_dim % 2:
            raise ConfigError(f"qk_rope_head_dim {cfg.qk_rope_head_dim} must be even for RoPE")
        if cfg.n_routed_experts:
            _positive(cfg, "experts_per_token", "moe_ffn_dim")
            if cfg.experts_per_token > cfg.n_routed_experts:
                raise ConfigError(f"experts_per_token {cfg.experts_per_token} exceeds"
                                  f" n_routed_experts {cfg.n_routed_experts}")
            if cfg.first_dense_layers > cfg.n_layers:
                raise ConfigError("first_dense_layers exceeds n_layers")
