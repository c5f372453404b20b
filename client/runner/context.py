"""The collaborators every phase of a client's work uses, passed explicitly (no reaching into the engine).

Why one value: a phase needs the chain (Backend), the P2P session, the change notifier, the reporter and the
settings; bundling them keeps phase signatures short and lets a test build a client from its own parts
(an in-process chain, a real iroh node) without an engine around it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from client.cli_common import ExitCode
from client.runner.backend import Backend
from client.runner.checkpoint_ref import CheckpointRef, CheckpointRefError
from client.runner.p2p_session import P2PSession
from client.runner.report import Reporter
from client.runner.settings import ClientExit, ClientSettings
from client.runner.watch import Watch


@dataclass
class RunnerContext:
    settings: ClientSettings
    backend: Backend
    p2p: P2PSession
    watch: Watch
    report: Reporter
    me: bytes  # the wallet's public key: how the chain lists this client
    in_flight: set[tuple[str, int]] = field(default_factory=set)  # (instruction, step) sent, not yet landed

    @property
    def state(self) -> Any:
        return self.watch.state

    def chain_checkpoint(self, st: Any) -> CheckpointRef:
        text = bytes(st.checkpoint[:int(st.checkpoint_len)]).decode("utf-8", errors="replace")
        try:
            return CheckpointRef.parse(text)
        except CheckpointRefError as e:
            raise ClientExit(ExitCode.MODEL_UNSUPPORTED, f"the run's checkpoint: {e}") from None


def first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:300]
