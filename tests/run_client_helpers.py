"""Shared pieces of the `psyche run-client` end-to-end tests: a small run.toml, and reading results back."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from client.local_cluster import REPO, ClientProcess, LocalCluster, psyche

RUN_TOML = """
[run]
name = "e2e"
open = true
earning_rate = {earning}
slashing_rate = 0

[config]
warmup_time = {warmup}
cooldown_time = 2
max_round_train_time = {round_time}
round_witness_time = 1
epoch_time = {epoch_time}
total_steps = {total_steps}
max_seq_len = 32
global_batch_size_start = 8
global_batch_size_end = 8
global_batch_size_warmup_tokens = 0
init_min_clients = {init_min}
waiting_for_members_extra_time = 1
min_clients = {min_clients}
witness_nodes = 0

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


def prepare_data(directory: Path) -> Path:
    """The pydoc corpus tokenized once per test session (every run of these tests trains on the same data)."""
    tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]  # one per checkout: worktrees do not share it
    data = Path(tempfile.gettempdir()) / f"psyche-tests-pydoc-33-{tag}"
    if not (data / "manifest.json").exists():
        psyche("data", "prepare", "--corpus", "pydoc", "--seq-len", "33", "-o", str(data), "--force", timeout=300)
    return data


def write_run_toml(directory: Path, *, earning: int = 900, epoch_time: int = 8, total_steps: int = 16,
                   init_min: int = 3, min_clients: int = 2, round_time: int = 15) -> Path:
    data = prepare_data(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "run.toml"
    path.write_text(RUN_TOML.format(earning=earning, epoch_time=epoch_time, total_steps=total_steps,
                                    init_min=init_min, min_clients=min_clients, warmup=epoch_time - 1, data=data,
                                    round_time=min(round_time, epoch_time - 1)))
    return path


def finished(client: ClientProcess) -> dict[str, Any]:
    done = client.of_kind("finished")
    assert done, f"{client.name} did not finish:\n" + client.log_path.read_text()[-3000:]
    return done[-1]


def epochs_of(client: ClientProcess) -> dict[int, int]:
    """epoch -> number of clients that started it, for each epoch this client warmed up in."""
    return {e["epoch"]: e["ready"] for e in client.of_kind("warmup")}


def expected_points(client: ClientProcess, earning: int) -> int:
    return sum(earning // n for n in epochs_of(client).values())


def points(cluster: LocalCluster, run_id: str) -> dict[str, tuple[int, int, str]]:
    return {c["wallet"]: (c["earned"], c["penalised"], c["state"]) for c in cluster.status(run_id)["clients"]}


def pubkey_of(path: Path) -> str:
    from coordinator_sdk.keypair_file import read_keypair

    return str(read_keypair(path).pubkey())


def logs(clients: list[ClientProcess]) -> str:
    return "\n".join(f"--- {c.name}\n" + c.log_path.read_text()[-2500:] for c in clients)
