"""Shared pieces of the `psyche run-client` end-to-end tests: a small run.toml, and reading results back."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from devtools import chaos_config
from devtools.local_cluster import ClientProcess, LocalCluster


def prepare_data(directory: Path) -> Path:
    """The pydoc corpus tokenized once per checkout (every run of these tests trains on the same data)."""
    return chaos_config.prepare_data()


def write_run_toml(directory: Path, *, earning: int = 900, epoch_time: int = 8, total_steps: int = 16,
                   init_min: int = 3, min_clients: int = 2, round_time: int = 15) -> Path:
    """The chaos rig's small run (devtools.chaos_config) with no penalty and a 1 s wait for members."""
    cfg = chaos_config.ChaosConfig(epoch_time=epoch_time, total_steps=total_steps, round_time=min(round_time,
                                   epoch_time - 1), warmup=epoch_time - 1, init_min=init_min,
                                   min_clients=min_clients, extra=1, earning=earning, slashing=0, name="e2e")
    return cfg.write(directory, prepare_data(directory))


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
