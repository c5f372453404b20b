"""A pure-Python reference model of the coordinator's state machine: the executable specification.

The on-chain program must agree with it after every instruction (differential tests drive both with the
same sequences); clients use it to predict deadlines, i.e. when a `tick` is due."""
from coordinator_sdk.model.errors import ModelError
from coordinator_sdk.model.machine import Machine, checkpoint_vote
from coordinator_sdk.model.state import ClientState, Config, RunState

__all__ = ["ClientState", "Config", "Machine", "ModelError", "RunState", "checkpoint_vote"]
