"""When the coordinator's next timeout falls, read from a decoded account (clients tick then; `run status`
and the dashboard show the time left). Kept free of anything heavy so read-only commands stay fast."""
from __future__ import annotations

from typing import Any

from coordinator_sdk.model.state import RunState
from coordinator_sdk.shuffle import witness_slots


def tick_due_at(st: Any) -> float | None:
    """When a `tick` would move the run (the program's timeouts); None when only other instructions can."""
    cfg, rs = st.config, int(st.run_state)
    if rs == RunState.WaitingForMembers:
        pending = sum(int(st.clients[i].active) == int(st.next_active) for i in range(int(st.num_clients)))
        if pending < int(cfg.init_min_clients):
            return None
        duration = int(cfg.waiting_for_members_extra_time)
    else:
        durations = {RunState.Warmup: cfg.warmup_time, RunState.RoundTrain: cfg.max_round_train_time,
                     RunState.RoundWitness: cfg.round_witness_time, RunState.Cooldown: cfg.cooldown_time}
        if rs not in durations:
            return None
        duration = int(durations[rs])
        if rs == RunState.Warmup and _warmup_voted(st):
            duration = 0  # every slot voted in the Warmup's own slot: a tick in a later slot starts round 0
    start = int(st.run_state_start_unix_timestamp)
    return float(max(start + duration, start + 1))


def _warmup_voted(st: Any) -> bool:
    """Every witness slot of the Warmup voted: round 0 then waits only for a slot after the Warmup's."""
    slots = witness_slots(int(st.config.witness_nodes), int(st.num_epoch_clients))
    return slots > 0 and int(st.rounds[int(st.rounds_head)].num_witnesses) >= slots
