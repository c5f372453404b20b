"""When the coordinator's next timeout falls, read from a decoded account (clients tick then; `run status`
and the dashboard show the time left). The rule itself is coordinator_sdk.model.deadline.due_at, shared
with the model. Kept free of anything heavy so read-only commands stay fast."""
from __future__ import annotations

from typing import Any

from coordinator_sdk.model.deadline import due_at
from coordinator_sdk.model.state import RunState
from coordinator_sdk.shuffle import witness_slots


def tick_due_at(st: Any) -> float | None:
    """When a `tick` would move the run (the program's timeouts); None when only other instructions can."""
    rs = int(st.run_state)
    pending = 0
    if rs == RunState.WaitingForMembers:
        pending = sum(int(st.clients[i].active) == int(st.next_active) for i in range(int(st.num_clients)))
    voted = rs == RunState.Warmup and _warmup_voted(st)
    due = due_at(rs, int(st.run_state_start_unix_timestamp), st.config, pending, voted)
    return None if due is None else float(due)


def _warmup_voted(st: Any) -> bool:
    """Every witness slot of the Warmup voted: round 0 then waits only for a slot after the Warmup's."""
    slots = witness_slots(int(st.config.witness_nodes), int(st.num_epoch_clients))
    return slots > 0 and int(st.rounds[int(st.rounds_head)].num_witnesses) >= slots
