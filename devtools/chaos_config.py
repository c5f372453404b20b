"""The run a chaos scenario trains: examples/run.toml's shape (byte-level Llama on the pydoc corpus, DisTrO
16/top-1), shrunk so that a round is ~1-2 s on 2 busy cores, with the knobs a fault scenario needs exposed:
how many rounds an epoch holds (epoch_time), when a round times out (round_time), how many clients start an
epoch (init_min) and a non-zero slashing rate, so that a penalty is visible on the chain.

Faults are judged against these timeouts: a round that runs to `round_time` is a lost round, so it must be
well above a normal round on a loaded machine (a normal round here is the witness phase, ~1 s, plus a few
hundred ms of training), and well below the epoch so that an epoch still holds rounds after one times out.
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devtools.local_cluster import REPO, psyche

TOML = """
[run]
name = "{name}"
open = true
earning_rate = {earning}
slashing_rate = {slashing}

[config]
warmup_time = {warmup}
cooldown_time = 2
max_round_train_time = {round_time}
round_witness_time = 1
epoch_time = {epoch_time}
total_steps = {total_steps}
max_seq_len = 32
global_batch_size_start = {batch}
global_batch_size_end = {batch}
global_batch_size_warmup_tokens = 0
init_min_clients = {init_min}
waiting_for_members_extra_time = {extra}
min_clients = {min_clients}
witness_nodes = 0
verifiers_per_mille = {verifiers}

[model]
arch = "llama"
vocab_size = 256
dim = 64
n_layers = 2
n_heads = 4
n_kv_heads = 2
ffn_dim = 128
max_seq_len = 32
seed = 3

[lr]
schedule = "cosine"
base = 3e-3
warmup_steps = 2
final = 3e-4
total_steps = {total_steps}

[distro]
chunk = 16
topk = 1
decay = 0.99

[data]
location = "{data}"

[checkpoint]
path = "initial"
"""


@dataclass(frozen=True)
class ChaosConfig:
    """The coordinator timings of a chaos run (seconds, steps). `extra` (waiting_for_members_extra_time) is
    counted from the start of WaitingForMembers, so every client already following the run joins in it and
    an epoch starts with all of them, not with the first `init_min`."""
    epoch_time: int = 14
    total_steps: int = 48
    round_time: int = 8
    warmup: int = 8
    init_min: int = 2
    min_clients: int = 2
    extra: int = 3
    earning: int = 900
    slashing: int = 10
    verifiers: int = 0  # recomputation spot-checks off unless a test is about them (issue 25)
    batch: int = 8  # samples per step: a run of many clients needs ≥ 2 each for a half-batch cheat to exist
    name: str = "chaos"

    def write(self, directory: Path, data: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "run.toml"
        path.write_text(TOML.format(data=data, **self.__dict__))
        return path


def prepare_data() -> Path:
    """The pydoc corpus tokenized for 32-token samples, once per checkout (the same cache the end-to-end
    tests use: tests/run_client_helpers.prepare_data)."""
    tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    data = Path(tempfile.gettempdir()) / f"psyche-tests-pydoc-33-{tag}"
    if not (data / "manifest.json").exists():
        psyche("data", "prepare", "--corpus", "pydoc", "--seq-len", "33", "-o", str(data), "--force", timeout=300)
    return data
