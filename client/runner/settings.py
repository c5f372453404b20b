"""Everything `psyche run-client` was told, checked, in one value; and how it ends."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from solders.keypair import Keypair

from client.errors import ExitCode
from client.p2p.identity import P2PIdentity


class ClientExit(Exception):
    """Ends the client with a distinct exit code and one line saying why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class ClientSettings:
    rpc_urls: list[str]
    ws_url: str | None
    run_id: str
    wallet: Keypair
    p2p: P2PIdentity
    bind_p2p: str = "0.0.0.0:0"
    relay: str = "disabled"
    device: str = "auto"
    micro_batch_size: int | None = None
    checkpoint_dir: Path | None = None
    keep_checkpoints: int = 3
    data: str | None = None
    simulate_training: float | None = None  # seconds: a seeded result instead of forward/backward (testing)
    verify_trainers: int = 8  # at most this many drawn trainers recomputed per round (0: none; ~3 are drawn)


def check_device_spec(spec: str) -> str | None:
    """Why `spec` is not a device name (None when it is one), without importing torch: a misspelt
    `--device tpu` is a bad argument (exit 2, as the README says), not a device this machine lacks (exit 6)."""
    if spec in ("auto", "cpu", "cuda"):
        return None
    if spec.startswith("cuda:"):
        return None if spec.removeprefix("cuda:").isdigit() else f"device {spec!r}: expected cuda:N"
    return f"device {spec!r}: use auto, cpu, cuda or cuda:N"


def resolve_device(spec: str) -> str:
    """`auto` picks CUDA when present; an explicit device this machine lacks is refused."""
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "cuda" or spec.startswith("cuda:"):
        index = 0 if spec == "cuda" else spec.removeprefix("cuda:")
        if not str(index).isdigit():
            raise ClientExit(ExitCode.USAGE, f"device {spec!r}: expected cuda:N")
        if not torch.cuda.is_available():
            raise ClientExit(ExitCode.DEVICE_UNAVAILABLE, f"device {spec!r}: this machine has no CUDA device")
        if int(index) >= torch.cuda.device_count():
            raise ClientExit(ExitCode.DEVICE_UNAVAILABLE, f"device {spec!r}: only {torch.cuda.device_count()}"
                             " CUDA device(s) here")
        return f"cuda:{index}"
    raise ClientExit(ExitCode.USAGE, f"device {spec!r}: use auto, cpu, cuda or cuda:N")
