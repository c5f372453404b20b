"""Issue 21, items 5 and 6, on the program (LiteSVM, deployed through the loader): participation is exact and
every round counts.

Before: witnesses posted 1024-bit participant blooms; at 256 clients a bloom answered "present" for about one
absent client in five, and 5 of 32 clients that delivered nothing survived the health checks and were paid.
Health checks read only the previous round's blooms from round 2 on, so round 0's and the last round's
participants were never checked: a client that skipped 2 of a 3-round epoch was paid in full. Now witnesses
post one bit per epoch client of the round, and the tick that ends a round's witnessing drops every client a
quorum of the round's elected witnesses left out."""
from __future__ import annotations

import pytest
from test_coordinator_security import GOAL, Drive

from coordinator_sdk.events import decode_logs
from devtools.litesvm_harness import CoordinatorSvm

COOLDOWN = 5


def exited_dropped(d: Drive) -> set[bytes]:
    st = d.st()
    return {bytes(st.exited_clients[i].signer) for i in range(st.num_exited_clients)
            if st.exited_clients[i].state == 1}


def earned(d: Drive) -> dict[bytes, int]:
    st = d.st()
    return {bytes(st.clients[i].signer): st.clients[i].earned for i in range(st.num_clients)}


def test_256_clients_32_absent_all_dropped_none_paid() -> None:
    d = Drive(CoordinatorSvm(), 256, run_id="part-256", min_clients=1)
    d.to_round()
    signers = d.epoch_signers()
    absent = set(signers[7::8])  # 32 clients spread over the list (bits in every word)
    present = [k for k in signers if k not in absent]
    d.ok(d.h.owner(d.run, "set_paused", True))  # a one-round epoch: Cooldown after this round
    posting = [k for k in d.elected() if k not in absent]  # an absent client posts nothing either
    d.play_round(posting=posting, delivered=present)
    assert d.st().run_state == 5
    assert exited_dropped(d) == absent and d.st().num_epoch_clients == 224
    d.h.advance(COOLDOWN)
    d.tick("tick: Cooldown -> Paused (pays 224)")
    paid = earned(d)
    assert all(paid[k] == 0 for k in absent)
    assert all(paid[k] == 1000 // 256 for k in present)
    assert max(d.cus.values()) <= GOAL, d.cus


@pytest.mark.parametrize("skipped", [(0, 2), (0,), (2,)])
def test_a_client_that_skips_the_first_or_last_round_is_not_paid(skipped: tuple[int, ...]) -> None:
    """A 3-round epoch (steps 1 to 3); the skipper neither trains nor witnesses in the rounds in `skipped`."""
    d = Drive(CoordinatorSvm(), 4, run_id="part-skip-" + "-".join(map(str, skipped)), total_steps=4)
    d.to_round()
    signers = d.epoch_signers()
    skipper = signers[3]
    for height in range(3):
        st = d.st()
        assert st.run_state == 3 and st.rounds[st.rounds_head].height == height
        if height in skipped:
            d.play_round(posting=[k for k in d.elected() if k != skipper], delivered=signers[:3])
        else:
            d.play_round()
    assert d.st().run_state == 5 and exited_dropped(d) == {skipper}
    d.h.advance(COOLDOWN)
    d.tick()
    paid = earned(d)
    assert [paid[k] for k in signers] == [250, 250, 250, 0]


def test_honest_clients_of_a_3_round_epoch_are_paid_in_full() -> None:
    d = Drive(CoordinatorSvm(), 4, run_id="part-honest", total_steps=4)
    d.to_round()
    for _ in range(3):
        d.play_round()
    assert d.st().run_state == 5 and d.st().num_exited_clients == 0
    d.h.advance(COOLDOWN)
    d.tick()
    assert sorted(earned(d).values()) == [250] * 4


def test_the_round_end_drops_without_any_report_and_logs_the_mask() -> None:
    d = Drive(CoordinatorSvm(), 4, run_id="part-mask")
    d.to_round()
    signers = d.epoch_signers()
    for k in d.elected():
        d.ok(d.witness(k, signers[:2]))
    d.h.advance(d.cfg["round_witness_time"])
    res = d.tick()
    assert exited_dropped(d) == set(signers[2:])
    events = [e for e in decode_logs(res.logs, d.h.codec.program_id) if e.kind == "absent"]
    assert [(e.fields["height"], e.fields["indices"]) for e in events] == [(0, [2, 3])]
