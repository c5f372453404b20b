"""A pure-Python reference model of the coordinator's state machine: the executable specification.

The on-chain program must agree with it after every instruction (differential tests drive both with the
same sequences); clients use it to predict deadlines, i.e. when a `tick` is due.

The names below load on first use: a reader of `model.state` (e.g. `psyche run status`) must not pay for
importing the whole machine."""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coordinator_sdk.model.errors import ModelError as ModelError
    from coordinator_sdk.model.machine import Machine as Machine
    from coordinator_sdk.model.machine import checkpoint_vote as checkpoint_vote
    from coordinator_sdk.model.state import ClientState as ClientState
    from coordinator_sdk.model.state import Config as Config
    from coordinator_sdk.model.state import RunState as RunState

_HOME = {"ModelError": "errors", "Machine": "machine", "checkpoint_vote": "machine", "ClientState": "state",
         "Config": "state", "RunState": "state"}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
