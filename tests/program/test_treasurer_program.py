"""The treasurer on LiteSVM with the real coordinator, SPL Token 3.5.0 and ATA 1.1.1 that LiteSVM ships:
run creation, administration through PDA-signed CPIs, claims paid in tokens, exact balances."""
from __future__ import annotations

from solders.keypair import Keypair
from treasurer_helpers import POINTS, fails_with, world

from coordinator_sdk.spl_token import decode_token_account


def test_run_create_wires_run_vault_and_coordinator() -> None:
    w = world(funded=0)
    h, tr = w.h, w.tr
    run = h.tcodec.decode_run(bytes(h.svm.get_account(tr.run).data))
    assert run.coordinator_account == tr.account and run.coordinator_instance == tr.instance
    assert run.collateral_mint == tr.mint and run.collateral_vault == tr.vault
    assert run.main_authority == tr.authority.pubkey() and run.collateral_per_point == 1
    vault = decode_token_account(bytes(h.svm.get_account(tr.vault).data))
    assert vault.owner == tr.run and vault.mint == tr.mint and vault.amount == 0 and vault.delegate is None
    inst = h.codec.decode(bytes(h.svm.get_account(tr.instance).data))
    assert inst.main_authority == tr.run  # only the treasurer can administer the coordinator run
    assert len(h.svm.get_account(tr.run).data) == 336
    assert len(h.svm.get_account(h.tcodec.participant_pda(tr.run, w.users[0].pubkey())).data) == 128


def test_operator_cannot_bypass_the_treasurer() -> None:
    w = world(funded=0)
    h, tr = w.h, w.tr
    direct = h.codec.owner_ix("set_future_epoch_rates", tr.authority.pubkey(), tr.instance, tr.account, 1, 1)
    res = h.send(direct, [tr.authority])
    assert not res.ok and h.error_name(res) == "Unauthorized" and res.error_code == 6011  # the coordinator's


def test_run_update_forwards_every_field() -> None:
    w = world(funded=0)
    h, tr = w.h, w.tr
    assert h.update(tr, paused=True).ok  # WaitingForMembers after the epoch -> Paused
    model = h.tcodec.program.type["ModelDescription"](
        architecture=0, data_type=0, optimizer=1, lr_schedule=0, cold_start_warmup_steps=0, lr_base=0.001,
        lr_warmup_init=0.0, lr_final=0.0, lr_warmup_steps=0, lr_total_steps=0, distro_decay=0.99, distro_chunk=16,
        distro_topk=1, distro_quantize1bit=1, data_location_len=3, distro_selection=0, distro_pipeline=0,
        data_location=list(b"abc") + [0] * 189)
    res = h.update(tr, metadata=("name", "a run paid in tokens", 1000, 256), model=model, progress=3,
                   checkpoint="hf://org/model@main", epoch_rates=(600, 5))
    assert res.ok, res.error
    st = h.state(tr)
    assert bytes(st.metadata.name[:st.metadata.name_len]) == b"name" and st.metadata.num_parameters == 1000
    assert st.model.distro_chunk == 16 and st.step == 3
    assert bytes(st.checkpoint[:st.checkpoint_len]) == b"hf://org/model@main"
    assert (st.future_earning_rate, st.future_slashing_rate) == (600, 5)
    assert h.update(tr, paused=False).ok
    assert h.state(tr).run_state == 1


def test_claims_pay_exact_tokens_and_keep_totals() -> None:
    w = world(rate=7)
    h, tr = w.h, w.tr
    a, b = w.users[0], w.users[1]
    assert h.claim(tr, a, 100).ok
    assert h.claim(tr, a, POINTS - 100).ok
    assert h.claim(tr, b, POINTS).ok
    assert h.token(w.atas[0]).amount == POINTS * 7 and h.token(w.atas[1]).amount == POINTS * 7
    assert h.token(tr.vault).amount == 10**6 - 2 * POINTS * 7
    part = h.tcodec.decode_participant(bytes(h.svm.get_account(h.tcodec.participant_pda(tr.run, a.pubkey())).data))
    assert (part.claimed_earned_points, part.claimed_collateral_amount) == (POINTS, POINTS * 7)
    run = h.tcodec.decode_run(bytes(h.svm.get_account(tr.run).data))
    assert (run.total_claimed_earned_points, run.total_claimed_collateral_amount) == (2 * POINTS, 2 * POINTS * 7)
    fails_with(h, h.tcodec.participant_claim(a.pubkey(), tr.run, tr.account, tr.mint, 1), [a], "ClaimExceedsEarned")


def test_penalties_reduce_what_can_be_claimed() -> None:
    w = world()
    h, tr, u = w.h, w.tr, w.users[2]
    acc = h.svm.get_account(tr.account)
    st = h.state(tr)
    i = [bytes(c.signer) for c in st.clients[:st.num_clients]].index(bytes(u.pubkey()))
    data = bytearray(acc.data)
    off = 57792 + 152 * i + 144  # the coordinator's RegisteredClient.slashed (a penalty the program applies)
    data[off:off + 8] = (40).to_bytes(8, "little")
    from solders.account import Account
    h.svm.set_account(tr.account, Account(acc.lamports, bytes(data), acc.owner, acc.executable, acc.rent_epoch))
    fails_with(h, h.tcodec.participant_claim(u.pubkey(), tr.run, tr.account, tr.mint, POINTS - 39), [u],
               "ClaimExceedsEarned")
    assert h.claim(tr, u, POINTS - 40).ok


def test_a_second_epoch_adds_claimable_points() -> None:
    w = world()
    h, tr = w.h, w.tr
    for u in w.users:
        assert h.claim(tr, u, POINTS).ok
    h.play_epoch(tr, w.users)
    for u, ata in zip(w.users, w.atas, strict=True):
        assert h.claim(tr, u, POINTS).ok
        assert h.token(ata).amount == 2 * POINTS


def test_someone_else_creating_the_vault_first_does_not_block_run_create() -> None:
    from coordinator_sdk.treasurer_codec import run_index

    w = world(funded=0)
    h = w.h
    run = h.tcodec.run_pda(run_index("griefed"))
    h.token_account(run, w.tr.mint)  # anyone may create the Run PDA's associated token account
    authority, account = h.fund(Keypair()), Keypair()
    res = h.send([h.create_account_ix(authority, account),
                  h.tcodec.run_create(authority.pubkey(), "griefed", account.pubkey(), w.tr.mint, authority.pubkey(),
                                      authority.pubkey())], [authority, account])
    assert res.ok, res.error
