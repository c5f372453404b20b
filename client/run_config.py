"""`run.toml`: what an operator says about a run, checked field by field before any transaction is sent.

Sections: [run] (name, description, open, earning_rate, slashing_rate), [config] (the coordinator's Config:
timings, batch sizes, clients), [model] (the initial model: training-core ModelConfig fields + seed),
[lr], [distro], [data] (location), [checkpoint] (path of the initial weights; written from [model] and
its seed when missing). Relative paths are resolved against the file's directory, because the chain must
hold absolute locations.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from client.runner.run_model import model_description_fields
from coordinator_sdk.model.state import Config

SECTIONS = {"run", "config", "model", "lr", "distro", "data", "checkpoint"}
RUN_KEYS = {"name", "description", "open", "earning_rate", "slashing_rate"}
U64_MAX = 2**64 - 1


class RunConfigError(ValueError):
    """A run.toml that breaks a rule; the message names the field and the rule."""


@dataclass
class RunConfig:
    path: Path
    name: str
    description: str
    open_to_all: bool
    earning_rate: int
    slashing_rate: int
    config: dict[str, int]
    model: dict[str, Any]
    seed: int
    model_fields: dict[str, Any]
    data_location: str
    checkpoint_path: Path


def _int(table: dict[str, Any], key: str, where: str, lo: int = 0, hi: int = U64_MAX) -> int:
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RunConfigError(f"{where}.{key} = {v!r}: must be an integer in [{lo}, {hi}]")
    return v


def _keys(what: str, keys: list[str], section: str) -> str:
    """"unknown key 'x' in [config]" / "missing keys 'a', 'b' in [config]": reads as a sentence, names each."""
    return f"{what} key{'s' if len(keys) > 1 else ''} {', '.join(repr(k) for k in keys)} in [{section}]"


def _resolve(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def load_run_config(path: Path) -> RunConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RunConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise RunConfigError(f"{path}: not a readable TOML file ({e})") from None
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise RunConfigError(f"{path}: unknown section(s) [{'], ['.join(unknown)}];"
                             f" known: {', '.join(sorted(SECTIONS))}")
    for section in SECTIONS:
        if not isinstance(raw.get(section, {}), dict):
            raise RunConfigError(f"{path}: [{section}] must be a table")
    base = path.resolve().parent
    run = raw.get("run", {})
    bad = sorted(set(run) - RUN_KEYS)
    if bad:
        raise RunConfigError(f"{_keys('unknown', bad, 'run')}; known: {', '.join(sorted(RUN_KEYS))}")

    cfg_raw = raw.get("config", {})
    names = [f.name for f in fields(Config)]
    missing, extra = sorted(set(names) - set(cfg_raw)), sorted(set(cfg_raw) - set(names))
    if missing or extra:
        raise RunConfigError("; ".join(_keys(what, keys, "config")
                                       for what, keys in (("unknown", extra), ("missing", missing)) if keys))
    widths = {"total_steps": 32, "max_seq_len": 32, "waiting_for_members_extra_time": 8, "init_min_clients": 16,
              "min_clients": 16, "witness_nodes": 16, "global_batch_size_start": 16, "global_batch_size_end": 16,
              "verifiers_per_mille": 16}
    config = {k: _int(cfg_raw, k, "config", 0, 2 ** widths.get(k, 64) - 1) for k in names}
    violations = Config(**config).violations()
    if violations:
        raise RunConfigError(f"[config]: {'; '.join(violations)}")  # all of them: fixing one must not reveal the next

    model = dict(raw.get("model", {}))
    seed = model.pop("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise RunConfigError(f"model.seed = {seed!r}: must be a non-negative integer")
    from client.training.config import ConfigError, ModelConfig

    try:
        mc = ModelConfig.from_dict(model, "[model]")
    except ConfigError as e:
        raise RunConfigError(str(e)) from None
    if mc.max_seq_len < config["max_seq_len"]:
        raise RunConfigError(f"model.max_seq_len = {mc.max_seq_len}: must be >= config.max_seq_len"
                             f" ({config['max_seq_len']})")

    location = raw.get("data", {}).get("location")
    if not isinstance(location, str) or not location:
        raise RunConfigError("[data].location: required (local:DIR, http(s)://URL or tcp://HOST:PORT)")
    if not location.startswith(("http://", "https://", "tcp://")):
        location = "local:" + str(_resolve(base, location.removeprefix("local:")))
    try:
        model_fields = model_description_fields(model, raw.get("lr", {"base": 1e-3}), raw.get("distro", {}), location)
    except (KeyError, TypeError, ValueError) as e:
        raise RunConfigError(f"[model]/[lr]/[distro]: {e}") from None
    check_model_fields(model_fields, config)
    if location.startswith("local:"):
        check_local_data(location, config["max_seq_len"], mc.vocab_size)

    ckpt = raw.get("checkpoint", {}).get("path", "initial-checkpoint")
    if not isinstance(ckpt, str):
        raise RunConfigError("checkpoint.path: must be a string (a directory)")
    name = run.get("name", "")
    desc = run.get("description", "")
    if not isinstance(name, str) or len(name.encode()) > 64:
        raise RunConfigError("run.name: must be a string of at most 64 bytes")
    if not isinstance(desc, str) or len(desc.encode()) > 280:
        raise RunConfigError("run.description: must be a string of at most 280 bytes")
    open_to_all = run.get("open", True)
    if not isinstance(open_to_all, bool):
        raise RunConfigError("run.open: must be true or false")
    rates = {k: _int({k: run.get(k, 0)}, k, "run") for k in ("earning_rate", "slashing_rate")}
    return RunConfig(path, name, desc, open_to_all, rates["earning_rate"], rates["slashing_rate"], config, model,
                     seed, model_fields, location, _resolve(base, ckpt))


# ModelDescription's integer fields and their widths (coordinator.h); an out-of-range value would fail in Borsh.
_MODEL_INTS = {"cold_start_warmup_steps": ("lr.cold_start_warmup_steps", 32),
               "lr_warmup_steps": ("lr.warmup_steps", 32), "lr_total_steps": ("lr.total_steps", 32),
               "distro_chunk": ("distro.chunk", 16), "distro_topk": ("distro.topk", 16)}
_MODEL_LRS = {"lr_base": "lr.base", "lr_warmup_init": "lr.warmup_init", "lr_final": "lr.final"}
F32_MAX = 3.4028234663852886e38


def check_model_fields(mf: dict[str, Any], config: dict[str, int]) -> None:
    """Every rule the program's update_model applies (a refusal there would strand a half-created run) and the
    ones the clients apply when they read the run (a decay or topk they cannot use leaves the run stuck)."""
    for key, (name, bits) in _MODEL_INTS.items():
        v = mf[key]
        if not 0 <= v < 2 ** bits:
            raise RunConfigError(f"{name} = {v}: must be an integer in [0, {2 ** bits - 1}]")
    for key, name in _MODEL_LRS.items():
        v = mf[key]
        if not math.isfinite(v) or math.copysign(1.0, v) < 0 or v > F32_MAX:  # -0.0 too: the sign bit
            raise RunConfigError(f"{name} = {v}: a learning rate must be a finite, non-negative f32")
    decay = mf["distro_decay"]
    if not (math.isfinite(decay) and 0 < decay <= 1):
        raise RunConfigError(f"distro.decay = {decay}: must lie in (0, 1]")
    chunk, topk = mf["distro_chunk"], mf["distro_topk"]
    if chunk < 1:
        raise RunConfigError(f"distro.chunk = {chunk}: must be at least 1")
    if not 1 <= topk <= chunk * chunk:
        raise RunConfigError(f"distro.topk = {topk}: must lie in [1, {chunk * chunk}] (a DCT block of chunk"
                             f" {chunk} holds at most {chunk}x{chunk} coefficients)")
    from types import SimpleNamespace

    from client.runner.run_model import ModelUnsupported, TrainingPlan

    try:  # exactly what every client checks when it reads the run
        TrainingPlan.from_chain(SimpleNamespace(**mf))
    except (ModelUnsupported, ValueError) as e:
        raise RunConfigError(f"[model]/[lr]/[distro]: a client would refuse this run: {e}") from None
    cold_limit = ((config["epoch_time"] - config["warmup_time"]) // config["max_round_train_time"]
                  if config["max_round_train_time"] else 0)
    if mf["cold_start_warmup_steps"] > cold_limit:
        raise RunConfigError(f"lr.cold_start_warmup_steps = {mf['cold_start_warmup_steps']}: must be at most"
                             f" {cold_limit} ((config.epoch_time - config.warmup_time) / config.max_round_train_time)")


def check_local_data(location: str, max_seq_len: int, vocab_size: int) -> None:
    """A `local:` location must be a prepared token directory here: otherwise every client exits at warmup
    and the run sticks there. Opening it as the clients do checks the files (and the manifest, if any)."""
    from data_providers.local import LocalProvider
    from data_providers.types import DataError

    path = location.removeprefix("local:")
    if not Path(path).is_dir():
        raise RunConfigError(f"data.location = {location!r}: no such directory (prepare one with"
                             " `psyche data prepare`, or name an http(s):// or tcp:// location)")
    try:
        provider = LocalProvider(path, max_seq_len + 1, wrap="wrap")
    except (DataError, OSError, ValueError) as e:
        raise RunConfigError(f"data.location = {location!r}: not a prepared data directory ({e})") from None
    if provider.num_samples < 1:
        raise RunConfigError(f"data.location = {location!r}: holds no sample of {max_seq_len + 1} tokens")
    data_vocab = (provider.manifest.tokenizer.get("vocab_size") if provider.manifest is not None else None)
    if isinstance(data_vocab, int) and data_vocab > vocab_size:
        raise RunConfigError(f"data.location = {location!r}: its tokenizer has {data_vocab} tokens, more than"
                             f" model.vocab_size = {vocab_size} (the model could not embed them)")
