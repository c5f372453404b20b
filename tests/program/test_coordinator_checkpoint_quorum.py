"""Issue 20: the checkpoint an epoch records is the one a majority of its healthy clients voted for. `checkpoint`
is a vote, taken in Cooldown only; the chain keeps sha256(reference)[:8] per epoch client and stores the
reference once votes * 2 > healthy clients. Every refusal is named and leaves the accounts byte-identical."""
from __future__ import annotations

from solders.keypair import Keypair
from test_coordinator_negative import expect
from test_coordinator_security import Drive

from coordinator_sdk.events import decode_logs
from coordinator_sdk.model import checkpoint_vote
from devtools.litesvm_harness import CoordinatorSvm

GOOD, EVIL, OTHER = "sha256:agreed@p2p", "sha256:diverged@p2p", "hf://org/model@rev2"
INITIAL = "sha256:initial@/srv/init"


def in_cooldown(n: int = 3, **cfg: int) -> Drive:
    """A run whose first epoch is in Cooldown with n healthy clients (a pending pause ends the epoch)."""
    d = Drive(CoordinatorSvm(), n, run_id="quorum", **cfg)
    d.ok(d.h.owner(d.run, "set_checkpoint", INITIAL))
    d.to_round()
    d.play_round()
    d.ok(d.h.owner(d.run, "set_paused", True))
    d.play_round()
    assert d.st().run_state == 5 and d.st().num_epoch_clients == n
    return d


def checkpoint(d: Drive) -> str:
    st = d.st()
    return bytes(st.checkpoint[:st.checkpoint_len]).decode()


def vote(d: Drive, signer: bytes, reference: str):
    return d.ok(d.h.client(d.run, "checkpoint", d.by_key[signer], reference), "checkpoint")


def votes(d: Drive) -> list[int]:
    st = d.st()
    return [st.checkpoint_votes[i] for i in range(st.num_epoch_clients)]


def test_checkpoint_outside_cooldown_is_refused_and_changes_nothing() -> None:
    d = Drive(CoordinatorSvm(), 3, run_id="quorum-states", total_steps=2)
    d.ok(d.h.owner(d.run, "set_paused", False))
    for u in d.users:
        d.ok(d.h.join(d.run, u))
    a, outsider = d.users[0], d.h.fund(Keypair())
    for who in (a, outsider):  # WaitingForMembers, a registered client or anyone
        expect(d.h, d.run, "WrongState", lambda who=who: d.h.client(d.run, "checkpoint", who, GOOD))
    d.h.advance(2)
    d.tick()
    assert d.st().run_state == 2
    expect(d.h, d.run, "WrongState", lambda: d.h.client(d.run, "checkpoint", a, GOOD))  # Warmup
    d.h.advance(0)
    for k in d.epoch_signers():
        d.ok(d.h.client(d.run, "warmup_witness", d.by_key[k]))
    assert d.st().run_state == 3
    expect(d.h, d.run, "WrongState", lambda: d.h.client(d.run, "checkpoint", a, GOOD))  # RoundTrain
    for k in d.elected():
        d.ok(d.witness(k, d.epoch_signers()))
    assert d.st().run_state == 4
    expect(d.h, d.run, "WrongState", lambda: d.h.client(d.run, "checkpoint", a, GOOD))  # RoundWitness
    d.h.advance(d.cfg["round_witness_time"])
    d.tick()
    assert d.st().run_state == 5 and d.st().step == 2  # total_steps reached: this Cooldown ends the run
    d.h.advance(d.cfg["cooldown_time"])
    d.tick()
    assert d.st().run_state == 6
    expect(d.h, d.run, "WrongState", lambda: d.h.client(d.run, "checkpoint", a, GOOD))  # Finished
    assert checkpoint(d) == "" and votes(d) == [0, 0, 0]


def test_a_minority_does_not_change_the_checkpoint_a_majority_does() -> None:
    d = in_cooldown(3)
    a, b, c = d.epoch_signers()
    res = vote(d, a, GOOD)
    assert checkpoint(d) == INITIAL  # 1 of 3
    assert votes(d) == [checkpoint_vote(GOOD.encode()), 0, 0]
    [ev] = decode_logs(res.logs, d.h.codec.program_id)
    assert (ev.kind, ev.fields["wallet"], ev.fields["votes"], ev.fields["healthy"]) == \
        ("checkpoint_vote", str(d.by_key[a].pubkey()), 1, 3)
    assert ev.fields["vote"] == f"{checkpoint_vote(GOOD.encode()):016x}"
    res = vote(d, b, GOOD)
    assert checkpoint(d) == GOOD  # 2 of 3
    events = [(e.kind, e.fields) for e in decode_logs(res.logs, d.h.codec.program_id)]
    assert events[-1] == ("checkpoint_adopted", {"reference": GOOD, "votes": 2, "healthy": 3})
    vote(d, c, EVIL)  # a client whose weights diverged, after the majority: nothing changes
    assert checkpoint(d) == GOOD
    assert votes(d) == [checkpoint_vote(GOOD.encode())] * 2 + [checkpoint_vote(EVIL.encode())]
    d.h.advance(d.cfg["cooldown_time"])
    d.tick()
    assert d.st().run_state == 7 and checkpoint(d) == GOOD


def test_a_split_vote_adopts_nothing() -> None:
    d = in_cooldown(4)
    a, b, c, e = d.epoch_signers()
    vote(d, a, GOOD)
    vote(d, b, GOOD)
    vote(d, c, EVIL)
    vote(d, e, OTHER)
    assert checkpoint(d) == INITIAL  # 2 of 4 is no majority
    vote(d, c, GOOD)  # a client changes its vote: 3 of 4
    assert checkpoint(d) == GOOD


def test_a_diverged_client_alone_cannot_name_the_checkpoint() -> None:
    d = in_cooldown(3)
    a, b, c = d.epoch_signers()
    vote(d, c, EVIL)
    vote(d, a, GOOD)
    assert checkpoint(d) == INITIAL
    vote(d, c, EVIL)  # repeating it changes nothing
    assert checkpoint(d) == INITIAL
    vote(d, b, GOOD)
    assert checkpoint(d) == GOOD


def test_a_revote_is_accepted_and_a_retry_is_idempotent() -> None:
    d = in_cooldown(3)
    a, b, _ = d.epoch_signers()
    vote(d, a, EVIL)
    vote(d, a, GOOD)  # replaces its own vote: a second vote is not counted twice
    assert votes(d)[0] == checkpoint_vote(GOOD.encode()) and checkpoint(d) == INITIAL
    vote(d, a, GOOD)
    assert checkpoint(d) == INITIAL  # one client, however often it votes, is 1 of 3
    nonce = d.st().nonce
    vote(d, b, GOOD)
    vote(d, b, GOOD)  # the same transaction retried: accepted, same outcome
    st = d.st()
    assert checkpoint(d) == GOOD and st.nonce == nonce + 2 and votes(d)[:2] == [checkpoint_vote(GOOD.encode())] * 2


def test_a_withdrawn_clients_vote_does_not_count() -> None:
    d = in_cooldown(3)
    a, b, c = d.epoch_signers()
    vote(d, a, EVIL)
    d.ok(d.h.client(d.run, "withdraw", d.by_key[a]))
    expect(d.h, d.run, "ClientNotHealthy", lambda: d.h.client(d.run, "checkpoint", d.by_key[a], EVIL))
    res = vote(d, c, EVIL)  # with a's vote this would be 2 of 3; a withdrew: 1 of the 2 healthy
    assert checkpoint(d) == INITIAL
    assert [(e.fields["votes"], e.fields["healthy"]) for e in decode_logs(res.logs, d.h.codec.program_id)] == [(1, 2)]
    vote(d, b, GOOD)
    assert checkpoint(d) == INITIAL  # 1 of 2 each
    vote(d, c, GOOD)
    assert checkpoint(d) == GOOD  # 2 of 2


def test_a_dropped_client_cannot_vote() -> None:
    d = Drive(CoordinatorSvm(), 4, run_id="quorum-drop")
    d.ok(d.h.owner(d.run, "set_checkpoint", INITIAL))
    d.to_round()
    signers = d.epoch_signers()
    lazy = signers[3]
    d.play_round()
    d.ok(d.h.owner(d.run, "set_paused", True))
    d.play_round(posting=[k for k in d.elected() if k != lazy], delivered=signers[:3])  # the round's end drops it
    st = d.st()
    assert st.run_state == 5 and st.num_epoch_clients == 3  # the dropped client left the epoch
    expect(d.h, d.run, "SignerNotAClient", lambda: d.h.client(d.run, "checkpoint", d.by_key[lazy], EVIL))
    vote(d, signers[0], GOOD)
    assert checkpoint(d) == INITIAL
    vote(d, signers[1], GOOD)
    assert checkpoint(d) == GOOD  # 2 of the 3 healthy: the dropped one is not counted


def test_a_non_client_signer_is_refused() -> None:
    d = in_cooldown(3)
    outsider = d.h.fund(Keypair())
    expect(d.h, d.run, "SignerNotAClient", lambda: d.h.client(d.run, "checkpoint", outsider, EVIL))
    registered = d.h.fund(Keypair())  # joins for the next epoch: not a client of this one
    d.ok(d.h.join(d.run, registered))
    expect(d.h, d.run, "SignerNotAClient", lambda: d.h.client(d.run, "checkpoint", registered, EVIL))
    a = d.by_key[d.epoch_signers()[0]]
    expect(d.h, d.run, "StringTooLong", lambda: d.h.client(d.run, "checkpoint", a, "x" * 128))
    assert votes(d) == [0, 0, 0]


def test_votes_of_the_previous_epoch_do_not_count() -> None:
    d = in_cooldown(3)
    a, b, _ = d.epoch_signers()
    vote(d, a, OTHER)  # 1 of 3: not adopted; the epoch ends with this vote on record
    d.h.advance(d.cfg["cooldown_time"])
    d.tick()
    assert d.st().run_state == 7 and d.st().epoch == 1
    assert votes(d)[0] == checkpoint_vote(OTHER.encode())  # kept until the next epoch starts
    d.ok(d.h.owner(d.run, "set_paused", False))
    for u in d.users:
        d.ok(d.h.join(d.run, u))
    d.h.advance(2)
    d.tick()
    assert d.st().run_state == 2 and d.epoch_signers() == [a, b, d.epoch_signers()[2]]
    assert votes(d) == [0, 0, 0]  # cleared as the epoch starts
    d.h.advance(0)
    for k in d.epoch_signers():
        d.ok(d.h.client(d.run, "warmup_witness", d.by_key[k]))
    d.ok(d.h.owner(d.run, "set_paused", True))
    d.play_round()
    assert d.st().run_state == 5
    vote(d, b, OTHER)  # with a's vote of the last epoch this would be 2 of 3
    assert checkpoint(d) == INITIAL
    vote(d, a, OTHER)
    assert checkpoint(d) == OTHER


def test_a_single_healthy_client_is_its_own_majority() -> None:
    d = in_cooldown(2, min_clients=1)
    a, b = d.epoch_signers()
    d.ok(d.h.client(d.run, "withdraw", d.by_key[b]))
    vote(d, a, GOOD)
    assert checkpoint(d) == GOOD


def test_the_events_decode_even_for_an_empty_reference() -> None:
    d = in_cooldown(3)
    a, b, _ = d.epoch_signers()
    vote(d, a, "")
    res = vote(d, b, "")  # an empty field is logged as an empty string between two spaces
    assert checkpoint(d) == ""
    assert [(e.kind, e.fields.get("reference"), e.fields["votes"], e.fields["healthy"])
            for e in decode_logs(res.logs, d.h.codec.program_id)] == [("checkpoint_vote", None, 2, 3),
                                                                      ("checkpoint_adopted", "", 2, 3)]
