"""Both decoders: config validation, causality, GQA/MLA shapes, bf16, and exact safetensors round trips."""
from __future__ import annotations

import json

import pytest
import torch
from training_helpers import llama_config, mla_config, moe_config

from client.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from client.training.config import ConfigError, ModelConfig
from client.training.model import build_model

CONFIGS = {"llama": llama_config, "mla": mla_config, "moe": moe_config}


@pytest.mark.parametrize("kind", CONFIGS)
def test_config_json_round_trip(kind: str, tmp_path) -> None:
    cfg = CONFIGS[kind]()
    cfg.save(tmp_path / "c.json")
    assert ModelConfig.load(tmp_path / "c.json") == cfg


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": 1}, "unknown key"),
    ({"dim": "64"}, "dim must be int"),
    ({"dim": True}, "dim must be int"),
    ({"n_kv_heads": 3}, "not a multiple of n_kv_heads"),
    ({"dim": 60}, "head_dim 15 must be even|not a multiple"),
    ({"arch": "gpt2"}, "arch must be one of"),
    ({"dtype": "float16"}, "dtype must be one of"),
    ({"n_layers": 0}, "n_layers must be positive"),
    ({"rope_theta": -1.0}, "must be positive"),
])
def test_bad_configs_are_rejected_with_the_field_named(change: dict, message: str) -> None:
    raw = llama_config().to_dict() | change
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_json(json.dumps(raw))


def test_mla_config_needs_its_latent_sizes() -> None:
    raw = mla_config().to_dict() | {"kv_lora_rank": 0}
    with pytest.raises(ConfigError, match="kv_lora_rank must be positive"):
        ModelConfig.from_dict(raw)


def test_missing_key_and_bad_json_are_named(tmp_path) -> None:
    raw = llama_config().to_dict()
    del raw["vocab_size"]
    with pytest.raises(ConfigError, match="missing key.*vocab_size"):
        ModelConfig.from_dict(raw)
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ConfigError, match="c.json: not valid JSON"):
        ModelConfig.load(tmp_path / "c.json")


@pytest.mark.parametrize("kind", CONFIGS)
def test_decoder_is_causal(kind: str) -> None:
    model = build_model(CONFIGS[kind](), seed=1)
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 256
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-5)
    assert not torch.allclose(a[:, 10:], b[:, 10:], atol=1e-3)


def test_gqa_shares_key_value_heads() -> None:
    attn = build_model(llama_config(n_kv_heads=1)).layers[0].attn
    assert attn.wq.weight.shape == (64, 64) and attn.wk.weight.shape == (16, 64) and attn.wv.weight.shape == (16, 64)


def test_mla_compresses_keys_and_values_through_a_latent() -> None:
    attn = build_model(mla_config()).layers[0].attn
    assert attn.wkv_a.weight.shape == (32 + 8, 64)  # latent + one decoupled RoPE key shared by all heads
    assert attn.wkv_b.weight.shape == (4 * (16 + 16), 32)
    assert attn.wq_a.weight.shape == (32, 64) and attn.wq_b.weight.shape == (4 * (16 + 8), 32)


def test_moe_routes_and_every_expert_gets_a_gradient() -> None:
    model = build_model(moe_config(), seed=2)
    model.loss(torch.randint(0, 256, (4, 17))).backward()
    ffn = model.layers[1].ffn
    assert len(ffn.experts) == 4
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("kind", CONFIGS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_checkpoint_round_trip_is_exact(kind: str, dtype: str, tmp_path) -> None:
    cfg = ModelConfig.from_dict(CONFIGS[kind]().to_dict() | {"dtype": dtype})
    model = build_model(cfg, seed=9)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "ckpt"))
    assert loaded.cfg == cfg
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), name
    tokens = torch.randint(0, 256, (1, 8))
    with torch.no_grad():
        assert torch.equal(model(tokens), loaded(tokens))


def test_checkpoint_of_another_shape_is_rejected(tmp_path) -> None:
    save_checkpoint(build_model(llama_config()), tmp_path / "a")
    save_checkpoint(build_model(llama_config(dim=128)), tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"tensor \S+ is torch.float32\[.*the model needs"):
        load_checkpoint(tmp_path / "a")


def test_truncated_checkpoint_is_rejected(tmp_path) -> None:
    path = save_checkpoint(build_model(llama_config()), tmp_path / "a") / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(tmp_path / "a")


def test_bf16_model_trains() -> None:
    model = build_model(ModelConfig.from_dict(llama_config().to_dict() | {"dtype": "bfloat16"}))
    loss = model.loss(torch.randint(0, 256, (2, 17)))
    loss.backward()
    assert loss.dtype == torch.float32 and model.head.weight.grad.dtype == torch.bfloat16


def test_same_seed_same_weights_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b = build_model(mla_config(), seed=4), build_model(mla_config(), seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.head.weight, build_model(mla_config(), seed=5).head.weight)


def test_sequence_longer_than_max_is_rejected() -> None:
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        build_model(llama_config())(torch.zeros(1, 33, dtype=torch.long))
