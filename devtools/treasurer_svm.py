"""The treasurer, the coordinator and LiteSVM's bundled SPL Token / ATA programs in one in-process LiteSVM:
what the treasurer's program tests and its CU bench drive. Both programs are deployed through the
upgradeable loader; runs earn their points by playing real epochs on the coordinator."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from solders.compute_budget import set_compute_unit_limit
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account

from coordinator_sdk import spl_token as spl
from coordinator_sdk.bloom import Bloom
from coordinator_sdk.codec import ANYONE
from coordinator_sdk.model.state import RunState
from coordinator_sdk.participation import participants_bitmap
from coordinator_sdk.shuffle import elected_witnesses
from coordinator_sdk.treasurer_codec import TreasurerCodec, run_index
from devtools.litesvm_harness import CoordinatorSvm, TxResult
from programs.deploy import deploy_named, deploy_via_loader, so_path

# A short epoch: 2 rounds, every client witnesses (witness_nodes 0), points paid at the epoch's end.
EPOCH_CONFIG = dict(warmup_time=10, cooldown_time=5, max_round_train_time=20, round_witness_time=2,
                    global_batch_size_warmup_tokens=0, epoch_time=30, total_steps=20, max_seq_len=512,
                    init_min_clients=3, min_clients=2, witness_nodes=0, global_batch_size_start=6,
                    global_batch_size_end=6, waiting_for_members_extra_time=1)


@dataclass
class TreasuryRun:
    run_id: str
    run: Pubkey
    instance: Pubkey
    account: Pubkey
    mint: Pubkey
    vault: Pubkey
    authority: Keypair
    mint_authority: Keypair
    decimals: int
    users: list[Keypair] = field(default_factory=list)


class TreasurerSvm(CoordinatorSvm):
    def __init__(self, now: int = 1_700_000_000, coordinator_id: Pubkey | None = None,
                 treasurer_id: Pubkey | None = None) -> None:
        """`coordinator_id` / `treasurer_id`: deploy the programs at these ids instead of the localnet's."""
        super().__init__(now, coordinator_id)
        if treasurer_id is None:
            self.tcodec = TreasurerCodec(coordinator=self.codec)
            self.treasurer = deploy_named(self.svm, "treasurer", self.payer)
        else:
            self.tcodec = TreasurerCodec(treasurer_id, coordinator=self.codec)
            self.treasurer = deploy_via_loader(self.svm, so_path("treasurer").read_bytes(), treasurer_id, self.payer)

    def error_name(self, res: TxResult) -> str | None:
        cls = self.tcodec.errors.by_code.get(res.error_code)
        return cls.error_name if cls else None

    # ---- SPL tokens ---------------------------------------------------------------------------------
    def create_mint(self, decimals: int = 6, authority: Keypair | None = None) -> tuple[Pubkey, Keypair]:
        authority, mint = authority or self.fund(Keypair()), Keypair()
        res = self.send(spl.create_mint_ixs(self.payer.pubkey(), mint.pubkey(), authority.pubkey(), decimals,
                                            self.svm.minimum_balance_for_rent_exemption(spl.MINT_SIZE),
                                            freeze_authority=authority.pubkey()), [mint])
        assert res.ok, res.error
        return mint.pubkey(), authority

    def token_account(self, owner: Pubkey, mint: Pubkey) -> Pubkey:
        assert self.send(spl.create_ata_idempotent(self.payer.pubkey(), owner, mint)).ok
        return spl.associated_token_address(owner, mint)

    def mint_to(self, mint: Pubkey, authority: Keypair, dest: Pubkey, amount: int, decimals: int = 6) -> None:
        res = self.send(spl.mint_to_ix(mint, dest, authority.pubkey(), amount, decimals), [authority])
        assert res.ok, res.error

    def token(self, key: Pubkey) -> spl.TokenAccount:
        return spl.decode_token_account(bytes(self.svm.get_account(key).data))

    # ---- treasurer runs -----------------------------------------------------------------------------
    def create_account_ix(self, owner: Keypair, account: Keypair):
        """The coordinator account (too big for a CPI create) is created in the run_create transaction, so
        it signs that transaction; the treasurer passes its signature on to init_run."""
        size = self.codec.account_size
        return create_account(CreateAccountParams(from_pubkey=owner.pubkey(), to_pubkey=account.pubkey(),
                                                  lamports=self.svm.minimum_balance_for_rent_exemption(size),
                                                  space=size, owner=self.codec.program_id))

    def treasury_run(self, run_id: str = "treasury-1", decimals: int = 6, rate: int = 1,
                     config: dict | None = None, rates: tuple[int, int] = (900, 0)) -> TreasuryRun:
        """A treasurer-administered run: mint, Run + vault + coordinator run, open to all, configured."""
        authority = self.fund(Keypair())
        mint, mint_authority = self.create_mint(decimals)
        account = Keypair()
        res = self.send([self.create_account_ix(authority, account),
                         self.tcodec.run_create(authority.pubkey(), run_id, account.pubkey(), mint, authority.pubkey(),
                                                authority.pubkey(), rate)], [authority, account])
        assert res.ok, res.error + "\n" + "\n".join(res.logs)
        run = self.tcodec.run_pda(run_index(run_id))
        tr = TreasuryRun(run_id, run, self.codec.instance_pda(run_id), account.pubkey(), mint,
                         self.tcodec.vault(run, mint), authority, mint_authority, decimals)
        grant = self.codec.authorize("authorize", authority.pubkey(), tr.instance, ANYONE, tr.account)
        assert self.send(grant, [authority]).ok
        res = self.update(tr, config=config or EPOCH_CONFIG, epoch_rates=rates)
        assert res.ok, res.error + "\n" + "\n".join(res.logs)
        return tr

    def update(self, tr: TreasuryRun, signer: Keypair | None = None, **fields) -> TxResult:
        signer = signer or tr.authority
        return self.send(self.tcodec.run_update(signer.pubkey(), tr.run, tr.instance, tr.account, **fields), [signer])

    def claim(self, tr: TreasuryRun, user: Keypair, points: int, **kw) -> TxResult:
        ix = self.tcodec.participant_claim(user.pubkey(), tr.run, tr.account, tr.mint, points, **kw)
        return self.send(ix, [user])

    def participant(self, tr: TreasuryRun, user: Keypair) -> TxResult:
        return self.send(self.tcodec.participant_create(user.pubkey(), tr.run), [user])

    def play_epoch(self, tr: TreasuryRun, users: list[Keypair]) -> None:
        """Unpause, join everyone, warm up, play rounds until the epoch's cooldown ends: points are paid."""
        start = self.state(tr)
        if start.run_state in (RunState.Uninitialized, RunState.Paused):
            assert self.update(tr, paused=False).ok
        for u in users:
            res = self.join(tr, u)
            assert res.ok, res.error
        by_key = {bytes(u.pubkey()): u for u in users}
        last = None
        self.advance(2)
        assert self.client(tr, "tick", users[0]).ok
        for u in users:
            assert self.client(tr, "warmup_witness", u).ok
        for _ in range(200):
            st = self.state(tr)
            if st.run_state == RunState.RoundTrain:  # the elected witnesses post
                r = st.rounds[st.rounds_head]
                epoch = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)]
                everyone = list(participants_bitmap(range(r.clients_len)))  # every client of the round trained
                for i in elected_witnesses(r.clients_len, r.random_seed, st.config.witness_nodes):
                    self.advance(0)  # a new slot, same second: 32 witnesses fit any round time
                    merkle = hashlib.sha256(epoch[i] + self.now.to_bytes(8, "little")).digest()
                    res = self.client(tr, "witness", by_key[epoch[i]], everyone,
                                      list(Bloom([0] * 8).to_bytes()), list(merkle), st.step, 0.0, 0.0, 0.0)
                    assert res.ok, f"witness failed: {res.error_name} {res.error}\n" + "\n".join(res.logs)
            elif st.run_state in (RunState.WaitingForMembers, RunState.Finished, RunState.Paused) \
                    and st.epoch > start.epoch:
                return
            self.advance(2)
            last = self.tick(tr, users[0])
        st = self.state(tr)
        raise AssertionError(f"the epoch did not end: state {st.run_state} epoch {st.epoch} step {st.step}, "
                             f"last tick {last.error_name or 'ok'} {last.error}")

    def tick(self, tr: TreasuryRun, user: Keypair) -> TxResult:
        """A tick; retried with the maximum compute budget when it runs out (the coordinator's epoch-end
        tick costs ~480k CU at 256 clients, over the default 200k)."""
        res = self.client(tr, "tick", user)
        if not res.ok and "ProgramFailedToComplete" in res.error:
            ix = self.codec.client_ix("tick", user.pubkey(), tr.instance, tr.account)
            res = self.send([set_compute_unit_limit(1_400_000), ix], [user])
        return res

    def join(self, run, user: Keypair, addr: str = "127.0.0.1:4000") -> TxResult:
        return super().join(run, user, addr)
