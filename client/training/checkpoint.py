"""Checkpoints in the HF layout Psyche uses: `config.json` + `model.safetensors`, round-tripping bit-exactly.

Loading checks the tensors against the config's model before copying anything in, so a file for another
architecture, a truncated file or a dtype mismatch fails with the tensor's name and leaves the model as is.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from client.training.config import ModelConfig
from client.training.model import Decoder, build_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint directory that does not hold a model matching its config."""


def save_checkpoint(model: Decoder, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.cfg.save(directory / CONFIG_FILE)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "arch": model.cfg.arch})
    return directory


def load_state_into(model: Decoder, tensors: dict[str, torch.Tensor], where: str) -> None:
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{where}: missing tensors {missing[:5]}, unexpected tensors {extra[:5]}")
    for name, want in expected.items():
        got = tensors[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(f"{where}: tensor {name} is {got.dtype}{list(got.shape)},"
                                  f" the model needs {want.dtype}{list(want.shape)}")
    with torch.no_grad():
        for name, p in model.state_dict().items():
            p.copy_(tensors[name])


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> Decoder:
    directory = Path(directory)
    cfg = ModelConfig.load(directory / CONFIG_FILE)
    path = directory / WEIGHTS_FILE
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from None
    model = build_model(cfg, device=device)
    load_state_into(model, tensors, str(path))
    return model
