"""The treasurer program's ABI from its IDL (programs/treasurer/idl.json): PDAs, instruction builders,
account decoders, and one error map for both programs (a coordinator error raised inside a treasurer CPI
keeps its coordinator name: treasurer errors are 7000+, the coordinator's 6000+). Offline, like
`codec.CoordinatorCodec`."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from anchorpy import Context, Idl, Program, Provider, Wallet
from solana.rpc.async_api import AsyncClient
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.sysvar import SLOT_HASHES

from coordinator_sdk.codec import CoordinatorCodec
from coordinator_sdk.program_errors import ErrorMap
from coordinator_sdk.spl_token import ATA_PROGRAM, TOKEN_PROGRAM, associated_token_address
from coordinator_sdk.verdicts import DEFAULT_VERIFIERS_PER_MILLE
from programs.deploy import program_id_for

IDL_PATH = Path(__file__).resolve().parent.parent / "programs" / "treasurer" / "idl.json"
LOCALNET_PROGRAM_ID = program_id_for("treasurer")  # the default; programs deployed elsewhere: pass program_id
PROGRAM_ID = LOCALNET_PROGRAM_ID  # (older name, kept for tests and benches)
RUN_DISCRIMINATOR = hashlib.sha256(b"account:Run").digest()[:8]
PARTICIPANT_DISCRIMINATOR = hashlib.sha256(b"account:Participant").digest()[:8]


def run_index(run_id: str | bytes) -> int:
    """The deterministic treasurer index of a run id: the first 8 bytes of sha256(run_id), little-endian
    (Psyche's compute_deterministic_treasurer_index)."""
    rid = run_id.encode() if isinstance(run_id, str) else run_id
    return int.from_bytes(hashlib.sha256(rid).digest()[:8], "little")


class TreasurerCodec:
    def __init__(self, program_id: Pubkey = PROGRAM_ID, coordinator: CoordinatorCodec | None = None,
                 idl_path: Path = IDL_PATH) -> None:
        self.program_id = program_id
        self.coordinator = coordinator or CoordinatorCodec()
        self.idl_json = json.loads(idl_path.read_text())
        self.program = Program(Idl.from_json(idl_path.read_text()), program_id,
                               Provider(AsyncClient("http://127.0.0.1:9"), Wallet(Keypair())))
        self.errors = ErrorMap([*self.coordinator.idl_json["errors"], *self.idl_json["errors"]])

    # ---- addresses ----------------------------------------------------------------------------------
    def run_pda(self, index: int) -> Pubkey:
        return Pubkey.find_program_address([b"Run", index.to_bytes(8, "little")], self.program_id)[0]

    def run_for(self, run_id: str) -> Pubkey:
        return self.run_pda(run_index(run_id))

    def participant_pda(self, run: Pubkey, user: Pubkey) -> Pubkey:
        return Pubkey.find_program_address([b"Participant", bytes(run), bytes(user)], self.program_id)[0]

    @staticmethod
    def vault(run: Pubkey, mint: Pubkey) -> Pubkey:
        """The run's token account: the associated token account of the Run PDA for the mint."""
        return associated_token_address(run, mint)

    # ---- instructions -------------------------------------------------------------------------------
    def ix(self, name: str, *args: Any, accounts: dict[str, Pubkey]) -> Instruction:
        return self.program.instruction[name](*args, ctx=Context(accounts=accounts))

    def run_create(self, payer: Pubkey, run_id: str, coordinator_account: Pubkey, mint: Pubkey,
                   main_authority: Pubkey, join_authority: Pubkey, collateral_per_point: int = 1,
                   index: int | None = None) -> Instruction:
        index = run_index(run_id) if index is None else index
        run = self.run_pda(index)
        return self.ix("run_create", index, run_id, main_authority, join_authority, collateral_per_point, accounts={
            "payer": payer, "run": run, "run_collateral": self.vault(run, mint), "collateral_mint": mint,
            "coordinator_instance": self.coordinator.instance_pda(run_id), "coordinator_account": coordinator_account,
            "coordinator_program": self.coordinator.program_id, "token_program": TOKEN_PROGRAM,
            "associated_token_program": ATA_PROGRAM, "system_program": SYSTEM_PROGRAM})

    def run_update(self, authority: Pubkey, run: Pubkey, instance: Pubkey, coordinator_account: Pubkey, *,
                   metadata: tuple[str, str, int, int] | None = None, config: dict[str, int] | None = None,
                   model: Any = None, progress: int | None = None, checkpoint: str | None = None,
                   epoch_rates: tuple[int, int] | None = None, paused: bool | None = None) -> Instruction:
        types = self.program.type
        md = None if metadata is None else types["RunMetadataUpdate"](
            name=metadata[0], description=metadata[1], num_parameters=metadata[2], vocab_size=metadata[3])
        cfg = None if config is None else types["Config"](
            **{"pad": [0] * 3, "verifiers_per_mille": DEFAULT_VERIFIERS_PER_MILLE, **config})
        rates = None if epoch_rates is None else types["EpochRates"](earning_rate=epoch_rates[0],
                                                                     slashing_rate=epoch_rates[1])
        return self.ix("run_update", md, cfg, model, progress, checkpoint, rates, paused, accounts={
            "authority": authority, "run": run, "coordinator_instance": instance,
            "coordinator_account": coordinator_account, "coordinator_program": self.coordinator.program_id,
            "slot_hashes": SLOT_HASHES})

    def participant_create(self, user: Pubkey, run: Pubkey) -> Instruction:
        return self.ix("participant_create", accounts={
            "user": user, "run": run, "participant": self.participant_pda(run, user), "system_program": SYSTEM_PROGRAM})

    def participant_claim(self, user: Pubkey, run: Pubkey, coordinator_account: Pubkey, mint: Pubkey, points: int,
                          user_collateral: Pubkey | None = None, banked: bool | Pubkey = False) -> Instruction:
        """`banked`: also count the user's banked points (True: its coordinator points PDA, as a 9th account;
        a Pubkey: that account instead, for tests of the checks)."""
        ix = self.ix("participant_claim", points, accounts={
            "user": user, "run": run, "participant": self.participant_pda(run, user),
            "coordinator_account": coordinator_account, "run_collateral": self.vault(run, mint),
            "user_collateral": user_collateral or associated_token_address(user, mint), "collateral_mint": mint,
            "token_program": TOKEN_PROGRAM})
        if banked is False:
            return ix
        key = self.coordinator.points_pda(coordinator_account, user) if banked is True else banked
        return Instruction(ix.program_id, ix.data, [*ix.accounts, AccountMeta(key, False, False)])

    # ---- accounts -----------------------------------------------------------------------------------
    def decode_run(self, raw: bytes) -> Any:
        if raw[:8] != RUN_DISCRIMINATOR:
            raise ValueError("not a treasurer Run account (wrong discriminator)")
        return self.program.coder.accounts.decode(raw)

    def decode_participant(self, raw: bytes) -> Any:
        if raw[:8] != PARTICIPANT_DISCRIMINATOR:
            raise ValueError("not a treasurer Participant account (wrong discriminator)")
        return self.program.coder.accounts.decode(raw)
