"""Every check of the coordinator program, attacked: each refusal is a named custom error (Anchor-style,
>= 6000) and leaves every account byte-identical."""
from __future__ import annotations

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account

from coordinator_sdk.codec import ANYONE
from coordinator_sdk.participation import participants_bitmap
from devtools.litesvm_harness import CoordinatorSvm, Run

CFG = dict(warmup_time=10, cooldown_time=5, max_round_train_time=20, round_witness_time=2,
           global_batch_size_warmup_tokens=0, epoch_time=200, total_steps=100, max_seq_len=512, init_min_clients=2,
           min_clients=2, witness_nodes=1, global_batch_size_start=8, global_batch_size_end=8,
           waiting_for_members_extra_time=1)


@pytest.fixture
def h() -> CoordinatorSvm:
    return CoordinatorSvm()


@pytest.fixture
def run(h: CoordinatorSvm) -> Run:
    return h.create_run("neg", config=CFG, rates=(1000, 7))


def snapshot(h: CoordinatorSvm, *keys: Pubkey) -> list[bytes | None]:
    out = []
    for k in keys:
        a = h.raw(k)
        out.append(None if a is None else bytes(a.data) + a.lamports.to_bytes(8, "little") + bytes(a.owner))
    return out


def expect(h: CoordinatorSvm, run: Run, name: str, send, *extra: Pubkey) -> None:
    keys = (run.instance, run.account, *extra)
    before = snapshot(h, *keys)
    res = send()
    assert not res.ok and res.error_name == name, (res.error_name, res.error, res.logs[-3:])
    assert snapshot(h, *keys) == before, "a refused instruction changed an account"


def with_metas(ix: Instruction, change) -> Instruction:
    metas = [AccountMeta(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts]
    change(metas)
    return Instruction(ix.program_id, ix.data, metas)


def to_round_train(h: CoordinatorSvm, run: Run, n: int = 4) -> list[Keypair]:
    users = [h.fund(Keypair()) for _ in range(n)]
    assert h.owner(run, "set_paused", False).ok
    for u in users:
        assert h.join(run, u).ok
    h.advance(2)
    assert h.client(run, "tick", users[0]).ok
    h.advance(CFG["warmup_time"])
    assert h.client(run, "tick", users[0]).ok
    assert h.state(run).run_state == 3
    return users


def test_missing_signer(h, run) -> None:
    ix = with_metas(h.codec.owner_ix("set_future_epoch_rates", run.owner.pubkey(), run.instance, run.account, 1, 1),
                    lambda m: m.__setitem__(0, AccountMeta(m[0].pubkey, False, False)))
    expect(h, run, "MissingSigner", lambda: h.send(ix))


def test_wrong_authority(h, run) -> None:
    intruder = h.fund(Keypair())
    ix = h.codec.owner_ix("set_future_epoch_rates", intruder.pubkey(), run.instance, run.account, 1, 1)
    expect(h, run, "Unauthorized", lambda: h.send(ix, [intruder]))


def _copy_to_new_key(h: CoordinatorSvm, key: Pubkey, owner: Pubkey | None = None, mutate=None) -> Pubkey:
    acc = h.raw(key)
    data = bytearray(acc.data)
    if mutate:
        mutate(data)
    new = Pubkey.new_unique()
    h.svm.set_account(new, Account(acc.lamports, bytes(data), owner or acc.owner, False, 0))
    return new


def test_wrong_owner(h, run) -> None:
    fake = _copy_to_new_key(h, run.account, owner=Pubkey.new_unique())
    ix = h.codec.owner_ix("set_future_epoch_rates", run.owner.pubkey(), run.instance, fake, 1, 1)
    expect(h, run, "WrongOwner", lambda: h.send(ix, [run.owner]), fake)


def test_forged_instance_pda(h, run) -> None:
    forged = _copy_to_new_key(h, run.instance)  # same bytes, program-owned, but not at the PDA
    ix = h.codec.owner_ix("set_future_epoch_rates", run.owner.pubkey(), forged, run.account, 1, 1)
    expect(h, run, "InvalidPda", lambda: h.send(ix, [run.owner]), forged)


def test_instance_with_a_changed_bump(h, run) -> None:
    """load_run re-derives the instance address from its stored run id and bump (the PDA hash): the real
    instance with its bump byte changed is not at its PDA."""
    acc = h.raw(run.instance)
    data = bytearray(acc.data)
    data[8] ^= 1  # RunInstance.bump
    h.svm.set_account(run.instance, Account(acc.lamports, bytes(data), acc.owner, False, 0))
    ix = h.codec.owner_ix("set_future_epoch_rates", run.owner.pubkey(), run.instance, run.account, 1, 1)
    expect(h, run, "InvalidPda", lambda: h.send(ix, [run.owner]))


def test_wrong_discriminator(h, run) -> None:
    fake = _copy_to_new_key(h, run.account, mutate=lambda d: d.__setitem__(0, d[0] ^ 0xFF))
    ix = h.codec.owner_ix("set_future_epoch_rates", run.owner.pubkey(), run.instance, fake, 1, 1)
    expect(h, run, "WrongDiscriminator", lambda: h.send(ix, [run.owner]), fake)


def test_wrong_size(h, run) -> None:
    fake = _copy_to_new_key(h, run.account, mutate=lambda d: d.extend(b"\0" * 8))
    ix = h.codec.owner_ix("set_future_epoch_rates", run.owner.pubkey(), run.instance, fake, 1, 1)
    expect(h, run, "WrongAccountSize", lambda: h.send(ix, [run.owner]), fake)


def test_account_of_another_run(h, run) -> None:
    other = h.create_run("other", config=CFG)
    ix = h.codec.owner_ix("set_future_epoch_rates", run.owner.pubkey(), run.instance, other.account, 1, 1)
    expect(h, run, "AccountMismatch", lambda: h.send(ix, [run.owner]), other.account)


def _fresh_account(h: CoordinatorSvm, owner: Keypair, size: int | None = None) -> Keypair:
    acc = Keypair()
    size = size or h.codec.account_size
    res = h.send(create_account(CreateAccountParams(from_pubkey=owner.pubkey(), to_pubkey=acc.pubkey(),
                                                    lamports=h.svm.minimum_balance_for_rent_exemption(size),
                                                    space=size, owner=h.codec.program_id)), [owner, acc])
    assert res.ok
    return acc


def test_reinit_is_refused(h, run) -> None:
    acc = _fresh_account(h, run.owner)
    ix = h.codec.init_run(run.owner.pubkey(), "neg", acc.pubkey(), run.owner.pubkey(), run.owner.pubkey())
    expect(h, run, "AlreadyInitialized", lambda: h.send(ix, [run.owner, acc]), acc.pubkey())
    ix = h.codec.init_run(run.owner.pubkey(), "fresh-id", run.account, run.owner.pubkey(), run.owner.pubkey())
    unsigned = with_metas(ix, lambda m: m.__setitem__(2, AccountMeta(m[2].pubkey, False, True)))
    expect(h, run, "MissingSigner", lambda: h.send(unsigned, [run.owner]))


def test_init_run_needs_the_account_signature(h, run) -> None:
    """A third party cannot initialise (and later close, taking its rent) an account another wallet
    prepared in an earlier transaction: init_run needs the coordinator account's own signature."""
    prepared = _fresh_account(h, run.owner)
    thief = h.fund(Keypair())
    ix = h.codec.init_run(thief.pubkey(), "hijack", prepared.pubkey(), thief.pubkey(), thief.pubkey())
    unsigned = with_metas(ix, lambda m: m.__setitem__(2, AccountMeta(m[2].pubkey, False, True)))
    expect(h, run, "MissingSigner", lambda: h.send(unsigned, [thief]), prepared.pubkey(),
           h.codec.instance_pda("hijack"))
    assert h.send(ix, [thief, prepared]).ok  # with the key holder's signature it is an ordinary init


def test_init_refuses_dirty_or_foreign_accounts(h, run) -> None:
    dirty = _fresh_account(h, run.owner)
    raw = h.raw(dirty.pubkey())
    data = bytearray(raw.data)
    data[-1] = 1
    h.svm.set_account(dirty.pubkey(), Account(raw.lamports, bytes(data), raw.owner, False, 0))
    ix = h.codec.init_run(run.owner.pubkey(), "dirty", dirty.pubkey(), run.owner.pubkey(), run.owner.pubkey())
    expect(h, run, "AccountNotZeroed", lambda: h.send(ix, [run.owner, dirty]), dirty.pubkey())
    small = _fresh_account(h, run.owner, size=1024)
    ix = h.codec.init_run(run.owner.pubkey(), "small", small.pubkey(), run.owner.pubkey(), run.owner.pubkey())
    expect(h, run, "WrongAccountSize", lambda: h.send(ix, [run.owner, small]), small.pubkey())
    from solders.system_program import ID as SYSTEM_PROGRAM
    ix = h.codec.ix("init_run", "x" * 33, run.owner.pubkey(), run.owner.pubkey(), accounts={
        "payer": run.owner.pubkey(), "instance": Pubkey.new_unique(), "coordinator_account": small.pubkey(),
        "system_program": SYSTEM_PROGRAM})
    expect(h, run, "RunIdInvalidLength", lambda: h.send(ix, [run.owner, small]))
    with pytest.raises(ValueError, match="1 to 32 bytes"):
        h.codec.instance_pda("x" * 33)


def test_uninitialized_account(h, run) -> None:
    acc = _fresh_account(h, run.owner)
    ix = h.codec.owner_ix("set_future_epoch_rates", run.owner.pubkey(), run.instance, acc.pubkey(), 1, 1)
    expect(h, run, "NotInitialized", lambda: h.send(ix, [run.owner]), acc.pubkey())


@pytest.mark.parametrize("field,value", [("epoch_time", 0), ("warmup_time", 500), ("max_round_train_time", 0),
                                         ("max_round_train_time", 200), ("round_witness_time", 0),
                                         ("min_clients", 0), ("init_min_clients", 1), ("init_min_clients", 257),
                                         ("global_batch_size_start", 0), ("global_batch_size_start", 9),
                                         ("total_steps", 0), ("witness_nodes", 3), ("cooldown_time", 0),
                                         ("waiting_for_members_extra_time", 0), ("max_seq_len", 0),
                                         ("global_batch_size_warmup_tokens", 2**47 + 1)])
def test_each_config_rule(h, run, field: str, value: int) -> None:
    cfg = h.codec.config(**{**CFG, field: value})
    expect(h, run, "InvalidConfig", lambda: h.owner(run, "update_config", cfg))


def test_state_rules(h, run) -> None:
    users = to_round_train(h, run)
    expect(h, run, "NotHalted", lambda: h.owner(run, "update_config", h.codec.config(**CFG)))
    expect(h, run, "NotPaused", lambda: h.owner(run, "set_paused", False))
    expect(h, run, "NotHalted", lambda: h.send(h.codec.ix("close_run", accounts={
        "authority": run.owner.pubkey(), "instance": run.instance, "coordinator_account": run.account}), [run.owner]))
    expect(h, run, "ClientIsHealthy", lambda: h.client(run, "health_check", users[0], 1))  # nobody posted yet
    expect(h, run, "NotAnEpochClient", lambda: h.client(run, "health_check", users[0], 4))
    expect(h, run, "SignerNotAClient", lambda: h.client(run, "withdraw", h.fund(Keypair())))
    h.advance(CFG["max_round_train_time"])
    assert h.client(run, "tick", users[0]).ok  # -> RoundWitness: a warmup witness is now out of place
    expect(h, run, "WrongState", lambda: h.client(run, "warmup_witness", users[0]))


def test_health_checks_only_while_a_round_is_in_progress(h, run) -> None:
    users = [h.fund(Keypair()) for _ in range(4)]
    assert h.owner(run, "set_paused", False).ok
    for u in users:
        assert h.join(run, u).ok
    h.advance(2)
    assert h.client(run, "tick", users[0]).ok and h.state(run).run_state == 2  # Warmup
    expect(h, run, "HealthCheckTooEarly", lambda: h.client(run, "health_check", users[0], 1))


def _witness_args(step: int = 1, participants: bytes = bytes(32)) -> tuple:
    return list(participants), [0] * 192, [0] * 32, step, 0.0, 0.0, 0.0


def test_witness_rules(h, run) -> None:
    users = to_round_train(h, run)
    st = h.state(run)
    from coordinator_sdk.shuffle import elected_witnesses
    r = st.rounds[st.rounds_head]
    chosen = elected_witnesses(r.clients_len, r.random_seed, CFG["witness_nodes"])
    by_signer = {bytes(u.pubkey()): u for u in users}
    epoch = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)]
    elected = by_signer[epoch[chosen[0]]]
    not_elected = by_signer[epoch[next(i for i in range(len(epoch)) if i not in chosen)]]
    outsider = h.fund(Keypair())
    expect(h, run, "SignerNotAClient", lambda: h.client(run, "witness", outsider, *_witness_args()))
    expect(h, run, "WitnessNotElected", lambda: h.client(run, "witness", not_elected, *_witness_args()))
    assert st.step == 1
    expect(h, run, "StaleRound", lambda: h.client(run, "witness", elected, *_witness_args(step=0)))
    expect(h, run, "StaleRound", lambda: h.client(run, "witness", elected, *_witness_args(step=2)))
    for past in (4, 5, 255):  # the round has 4 clients: a bit at 4 or beyond names nobody of it
        expect(h, run, "ParticipantOutOfRange",
               lambda past=past: h.client(run, "witness", elected, *_witness_args(1, participants_bitmap([0, past]))))
    h.advance(1)
    assert h.client(run, "witness", elected, *_witness_args(1, participants_bitmap(range(4)))).ok  # -> RoundWitness
    expect(h, run, "DuplicateWitness", lambda: h.client(run, "witness", elected, *_witness_args()))
    short = Instruction(h.codec.program_id, bytes(h.codec.client_ix("witness", elected.pubkey(), run.instance,
                                                                   run.account, *_witness_args()).data)[:-3],
                        h.codec.client_ix("tick", elected.pubkey(), run.instance, run.account).accounts)
    expect(h, run, "InvalidInstruction", lambda: h.send(short, [elected]))


def test_wrong_sysvar_and_unknown_instruction(h, run) -> None:
    users = to_round_train(h, run)
    ix = with_metas(h.codec.client_ix("tick", users[0].pubkey(), run.instance, run.account),
                    lambda m: m.__setitem__(3, AccountMeta(Pubkey.new_unique(), False, False)))
    expect(h, run, "WrongSysvar", lambda: h.send(ix, [users[0]]))
    for data in (b"", b"\x01\x02", bytes(8)):
        bad = Instruction(h.codec.program_id, data, ix.accounts)
        expect(h, run, "InvalidInstruction", lambda bad=bad: h.send(bad, [users[0]]))
    few = Instruction(ix.program_id, ix.data, ix.accounts[:2])
    expect(h, run, "NotEnoughAccounts", lambda: h.send(few, [users[0]]))


def test_join_rules(h) -> None:
    closed = h.create_run("closed", open_to_all=False,
                          config={**CFG, "global_batch_size_start": 2, "global_batch_size_end": 2})
    user = h.fund(Keypair())
    expect(h, closed, "NotAuthorized", lambda: h.join(closed, user))
    assert h.send(h.codec.authorize("authorize", closed.owner.pubkey(), closed.instance, user.pubkey(),
                                    closed.account), [closed.owner]).ok
    ok = h.send(h.codec.join_run(user.pubkey(), closed.instance, closed.account, user.pubkey(), "h",
                                 grantee=user.pubkey()), [user])
    assert ok.ok
    other = h.fund(Keypair())
    expect(h, closed, "NotAuthorized", lambda: h.send(h.codec.join_run(
        other.pubkey(), closed.instance, closed.account, other.pubkey(), "h", grantee=user.pubkey()), [other]))
    expect(h, closed, "StringTooLong", lambda: h.send(h.codec.join_run(
        user.pubkey(), closed.instance, closed.account, user.pubkey(), "x" * 65, grantee=user.pubkey()), [user]))
    assert h.send(h.codec.authorize("authorize", closed.owner.pubkey(), closed.instance, ANYONE, closed.account),
                  [closed.owner]).ok
    second = h.fund(Keypair())
    assert h.join(closed, second).ok
    assert h.send(h.codec.authorize("revoke", closed.owner.pubkey(), closed.instance, ANYONE, closed.account),
                  [closed.owner]).ok
    gone = h.raw(h.codec.authorization_pda(closed.instance, ANYONE, closed.account))
    assert gone is None or gone.lamports == 0
    expect(h, closed, "NotAuthorized", lambda: h.join(closed, second))


def test_clients_full_at_256(h) -> None:
    run = h.create_run("full", config={**CFG, "global_batch_size_end": 1000})
    assert h.owner(run, "set_paused", False).ok
    users = [h.fund(Keypair(), 10**7) for _ in range(256)]
    for u in users:
        assert h.join(run, u).ok
    assert h.state(run).num_clients == 256
    h.advance(2)
    assert h.client(run, "tick", users[0]).ok
    assert h.state(run).run_state == 2  # all 256 are healthy clients of the epoch in progress: none evictable
    expect(h, run, "ClientsFull", lambda: h.join(run, h.fund(Keypair(), 10**7)))


def test_arithmetic_overflow_at_the_limit(h, run) -> None:
    raw = h.raw(run.account)
    data = bytearray(raw.data)
    data[16:24] = (2**64 - 1).to_bytes(8, "little")  # nonce at u64::MAX: the next bump must not wrap
    h.svm.set_account(run.account, Account(raw.lamports, bytes(data), raw.owner, False, 0))
    expect(h, run, "ArithmeticOverflow", lambda: h.owner(run, "set_future_epoch_rates", 1, 1))


def test_checkpoint_and_close(h, run) -> None:
    users = to_round_train(h, run, 2)
    expect(h, run, "StringTooLong", lambda: h.client(run, "checkpoint", users[0], "x" * 128))
    # a checkpoint is a vote taken in Cooldown only (tests/program/test_coordinator_checkpoint_quorum.py)
    expect(h, run, "WrongState", lambda: h.client(run, "checkpoint", users[0], "hf://org/model@rev1"))
    outsider = h.fund(Keypair())
    expect(h, run, "WrongState", lambda: h.client(run, "checkpoint", outsider, "hub://x"))
    assert h.owner(run, "set_paused", True).ok
    for _ in range(6):
        h.advance(30)
        h.client(run, "tick", users[0])
    assert h.state(run).run_state == 7
    before = h.svm.get_balance(run.owner.pubkey())
    held = h.raw(run.account).lamports + h.raw(run.instance).lamports
    assert h.send(h.codec.ix("close_run", accounts={"authority": run.owner.pubkey(), "instance": run.instance,
                                                    "coordinator_account": run.account}), [run.owner]).ok
    for key in (run.account, run.instance):
        acc = h.raw(key)
        assert acc is None or (acc.lamports == 0 and not any(bytes(acc.data)))
    assert h.svm.get_balance(run.owner.pubkey()) == before + held


@pytest.mark.parametrize("field,value", [("architecture", 4), ("data_type", 2), ("optimizer", 2), ("lr_schedule", 4),
                                         ("data_location_len", 0), ("lr_base", "nan"), ("lr_final", -1.0),
                                         ("distro_quantize1bit", 2), ("cold_start_warmup_steps", 10**6),
                                         ("distro_topk", 0), ("distro_selection", 2),
                                         ("distro_pipeline", 2)])
def test_each_model_rule(h, run, field: str, value) -> None:
    from test_coordinator_layout import model_description

    if value == "nan":  # borsh cannot encode a NaN: patch the f32 bits into the instruction data instead
        ix = h.codec.owner_ix("update_model", run.owner.pubkey(), run.instance, run.account, model_description(h.codec))
        data = bytearray(bytes(ix.data))
        data[16:20] = b"\x00\x00\xc0\x7f"  # lr_base: disc 8 + 4 u8 fields + cold_start u32
        send = lambda: h.send(Instruction(ix.program_id, bytes(data), ix.accounts), [run.owner])  # noqa: E731
    else:
        model = model_description(h.codec, **{field: value})
        send = lambda: h.owner(run, "update_model", model)  # noqa: E731
    expect(h, run, "InvalidModel", send)


def test_update_rules(h, run) -> None:
    from test_coordinator_layout import model_description

    expect(h, run, "InvalidProgress", lambda: h.owner(run, "update_progress", 0))
    expect(h, run, "StringTooLong", lambda: h.owner(run, "update_metadata", "n" * 65, "", 1, 1))
    expect(h, run, "StringTooLong", lambda: h.owner(run, "update_metadata", "n", "d" * 281, 1, 1))
    to_round_train(h, run)
    expect(h, run, "NotHalted", lambda: h.owner(run, "update_model", model_description(h.codec)))
    expect(h, run, "NotHalted", lambda: h.owner(run, "update_progress", 5))
    assert h.owner(run, "update_metadata", "renamed while running", "", 1, 1).ok


def test_full_registry_protects_the_epoch_in_progress(h) -> None:
    run = h.create_run("reuse", config={**CFG, "global_batch_size_start": 2, "global_batch_size_end": 2})
    first = to_round_train(h, run, 2)
    newcomer = h.fund(Keypair())
    expect(h, run, "MoreClientsThanBatches", lambda: h.join(run, newcomer))  # both are healthy epoch clients
    assert h.client(run, "withdraw", first[0]).ok  # first[0] leaves with no points: its slot can be reused
    assert h.join(run, newcomer).ok
    st = h.state(run)
    assert st.num_clients == 2
    assert {st.clients[i].signer for i in range(2)} == {first[1].pubkey(), newcomer.pubkey()}
