"""The coordinator in an in-process LiteSVM, deployed through the upgradeable loader: what program tests,
differential tests and the CU bench drive. Time is the Clock sysvar, set explicitly."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction

from coordinator_sdk.codec import ANYONE, CoordinatorCodec
from coordinator_sdk.points import decode_banked, evictee
from programs.deploy import deploy_named, deploy_via_loader, so_path


@dataclass
class TxResult:
    ok: bool
    cu: int
    logs: list[str]
    error_code: int | None = None
    error: str = ""

    @property
    def error_name(self) -> str | None:
        return CODEC.errors.by_code[self.error_code].error_name if self.error_code in CODEC.errors.by_code else None


CODEC = CoordinatorCodec()


@dataclass
class Run:
    run_id: str
    instance: Pubkey
    account: Pubkey
    owner: Keypair
    clients: list[Keypair] = field(default_factory=list)


class CoordinatorSvm:
    def __init__(self, now: int = 1_700_000_000, coordinator_id: Pubkey | None = None) -> None:
        """`coordinator_id`: deploy the coordinator there instead of at its localnet id (a program deployed
        elsewhere, as on a real cluster)."""
        self.svm = LiteSVM()
        self.payer = Keypair()
        self.svm.airdrop(self.payer.pubkey(), 10**14)  # LiteSVM's faucet holds about 1e15
        if coordinator_id is None:
            self.codec = CODEC
            self.deployed = deploy_named(self.svm, "coordinator", self.payer)
        else:
            self.codec = CoordinatorCodec(coordinator_id)
            self.deployed = deploy_via_loader(self.svm, so_path("coordinator").read_bytes(), coordinator_id,
                                              self.payer)
        self.now = now
        self.set_time(now)

    # ---- time ---------------------------------------------------------------------------------------
    def set_time(self, now: int) -> None:
        """Move to the next slot at chain time `now`; the finished slot's hash enters SlotHashes (newest
        first, 512 kept) as a validator does, so seeds drawn from slot hashes behave as on a cluster."""
        c = self.svm.get_clock()
        self.now = now
        self._slot_hashes = [(c.slot, Hash(hashlib.sha256(b"slot %d %d" % (id(self), c.slot)).digest())),
                             *getattr(self, "_slot_hashes", [])][:512]
        self.svm.set_slot_hashes(self._slot_hashes)
        self.svm.set_clock(Clock(slot=c.slot + 1, epoch_start_timestamp=c.epoch_start_timestamp, epoch=c.epoch,
                                 leader_schedule_epoch=c.leader_schedule_epoch, unix_timestamp=now))
        self.svm.expire_blockhash()

    @property
    def slot(self) -> int:
        return self.svm.get_clock().slot

    def advance(self, seconds: int) -> None:
        self.set_time(self.now + seconds)

    # ---- transactions -------------------------------------------------------------------------------
    def send(self, ixs: list[Instruction] | Instruction, signers: list[Keypair] = ()) -> TxResult:
        ixs = [ixs] if isinstance(ixs, Instruction) else ixs
        signers = [self.payer, *[s for s in signers if s.pubkey() != self.payer.pubkey()]]
        tx = Transaction.new_signed_with_payer(ixs, self.payer.pubkey(), signers, self.svm.latest_blockhash())
        res = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        if type(res).__name__ == "TransactionMetadata":
            self._purge_emptied(tx.message.account_keys)
            return TxResult(True, res.compute_units_consumed(), list(res.logs()))
        meta, text = res.meta(), str(res.err())
        m = re.search(r"InstructionErrorCustom\((\d+)\)", text)
        return TxResult(False, meta.compute_units_consumed(), list(meta.logs()), int(m.group(1)) if m else None, text)

    def _purge_emptied(self, keys) -> None:
        """A validator deletes an account that a transaction left with 0 lamports (LiteSVM keeps it): do the
        same, so closing and re-creating accounts behaves as on a cluster."""
        for key in keys:
            acc = self.svm.get_account(key)
            if acc is not None and acc.lamports == 0 and (len(acc.data) or acc.owner != SYSTEM_PROGRAM):
                self.svm.set_account(key, Account(0, b"", SYSTEM_PROGRAM, False, 0))

    def fund(self, kp: Keypair, lamports: int = 10**10) -> Keypair:
        self.svm.airdrop(kp.pubkey(), lamports)
        return kp

    # ---- runs ---------------------------------------------------------------------------------------
    def create_run(self, run_id: str = "run-1", open_to_all: bool = True, config: dict | None = None,
                   rates: tuple[int, int] | None = None) -> Run:
        owner = self.fund(Keypair())
        account = Keypair()
        size = self.codec.account_size
        rent = self.svm.minimum_balance_for_rent_exemption(size)
        res = self.send([create_account(CreateAccountParams(from_pubkey=owner.pubkey(), to_pubkey=account.pubkey(),
                                                            lamports=rent, space=size, owner=self.codec.program_id)),
                         self.codec.init_run(owner.pubkey(), run_id, account.pubkey(), owner.pubkey(), owner.pubkey())],
                        [owner, account])
        assert res.ok, res.error + "\n" + "\n".join(res.logs)
        run = Run(run_id, self.codec.instance_pda(run_id), account.pubkey(), owner)
        if open_to_all:
            assert self.send(self.codec.authorize("authorize", owner.pubkey(), run.instance, ANYONE, run.account),
                             [owner]).ok
        if config is not None:
            res = self.owner(run, "update_config", self.codec.config(**config))
            assert res.ok, res.error
        if rates is not None:
            assert self.owner(run, "set_future_epoch_rates", *rates).ok
        return run

    def owner(self, run: Run, name: str, *args: Any) -> TxResult:
        return self.send(self.codec.owner_ix(name, run.owner.pubkey(), run.instance, run.account, *args), [run.owner])

    def client(self, run: Run, name: str, user: Keypair, *args: Any) -> TxResult:
        return self.send(self.codec.client_ix(name, user.pubkey(), run.instance, run.account, *args), [user])

    def join(self, run: Run, user: Keypair, addr: str = "127.0.0.1:4000") -> TxResult:
        """Join with the wallet's key as P2P key, passing the points PDA of the slot's holder when the join
        evicts a client with points (as Coordinator.join_run does)."""
        out = evictee(self.state(run), user.pubkey())
        return self.send(self.codec.join_run(user.pubkey(), run.instance, run.account, user.pubkey(), addr,
                                             evictee=out), [user])

    def banked(self, run: Run, wallet: Pubkey) -> tuple[int, int]:
        """(earned, slashed) banked in `wallet`'s points PDA of `run` ((0, 0) when it does not exist)."""
        acc = self.svm.get_account(self.codec.points_pda(run.account, wallet))
        return decode_banked(bytes(acc.data) if acc is not None else None)

    def state(self, run: Run) -> Any:
        return self.codec.decode_state(bytes(self.svm.get_account(run.account).data))

    def raw(self, key: Pubkey) -> Account | None:
        return self.svm.get_account(key)
