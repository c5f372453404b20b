"""When the coordinator's next timeout falls: the one rule that the model (transitions.tick_due_at, on a
State) and the clients (coordinator_sdk.deadlines.tick_due_at, on a decoded account) both apply. Plain
values in, so either side passes what it reads its own way; nothing heavy imported."""
from __future__ import annotations

from typing import Any

from coordinator_sdk.model.state import RunState


def due_at(run_state: int, start: int, cfg: Any, pending_members: int, warmup_voted: bool) -> int | None:
    """The earliest chain time at which a `tick` moves the run (the program's timeouts), or None when only an
    instruction other than tick can (halted, or waiting for members that have not all joined).
    pending_members: registry clients that joined for the next epoch (read only in WaitingForMembers);
    warmup_voted: every witness slot of the Warmup voted (read only in Warmup: round 0 then waits only for a
    slot after the Warmup's, so a tick in the next second starts it)."""
    rs = int(run_state)
    if rs == RunState.WaitingForMembers:
        if pending_members < int(cfg.init_min_clients):
            return None
        duration = int(cfg.waiting_for_members_extra_time)
    else:
        durations = {RunState.Warmup: cfg.warmup_time, RunState.RoundTrain: cfg.max_round_train_time,
                     RunState.RoundWitness: cfg.round_witness_time, RunState.Cooldown: cfg.cooldown_time}
        if rs not in durations:
            return None
        duration = 0 if rs == RunState.Warmup and warmup_voted else int(durations[rs])
    start = int(start)
    return max(start + duration, start + 1)
