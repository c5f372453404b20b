"""The coordinator program's ABI from its IDL (programs/coordinator/idl.json): instruction builders, account
decoders, PDA helpers and the named error map. anchorpy does the borsh work offline; nothing here talks to
a node, so the same code serves LiteSVM tests, the localnet and any cluster.

anchorpy (and its Program) is built on first use: reading a run (`psyche run status`, a client following the
chain) decodes with the numpy layout below and never needs it, and importing it costs more than the rest of
such a command (bench/cli_startup.py)."""
from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.sysvar import SLOT_HASHES

from coordinator_sdk.layout_view import LayoutTable, read_account
from coordinator_sdk.points import points_pda
from coordinator_sdk.program_errors import ErrorMap
from coordinator_sdk.verdicts import DEFAULT_VERIFIERS_PER_MILLE
from programs.deploy import program_id_for

IDL_PATH = Path(__file__).resolve().parent.parent / "programs" / "coordinator" / "idl.json"
LOCALNET_PROGRAM_ID = program_id_for("coordinator")  # the default; programs deployed elsewhere: pass program_id
PROGRAM_ID = LOCALNET_PROGRAM_ID  # (older name, kept for tests and benches)
ANYONE = Pubkey.default()  # an authorization granted to the all-zero key lets anyone join
ACCOUNT_DISCRIMINATOR = hashlib.sha256(b"account:CoordinatorAccount").digest()[:8]
INSTANCE_DISCRIMINATOR = hashlib.sha256(b"account:RunInstance").digest()[:8]


class CoordinatorCodec:
    def __init__(self, program_id: Pubkey = PROGRAM_ID, idl_path: Path = IDL_PATH) -> None:
        self.program_id = program_id
        self.idl_path = idl_path
        self.idl_json = json.loads(idl_path.read_text())
        self.errors = ErrorMap(self.idl_json["errors"])

    @cached_property
    def idl(self) -> Any:
        from anchorpy import Idl

        return Idl.from_json(self.idl_path.read_text())

    @cached_property
    def program(self) -> Any:
        """anchorpy's Program for building instructions and typed values (imported and built on first use)."""
        from anchorpy import Program, Provider, Wallet
        from solana.rpc.async_api import AsyncClient

        # A Program needs a provider; it is never used to send here (building and decoding are offline).
        return Program(self.idl, self.program_id, Provider(AsyncClient("http://127.0.0.1:9"), Wallet(Keypair())))

    # ---- addresses ----------------------------------------------------------------------------------
    def instance_pda(self, run_id: str | bytes) -> Pubkey:
        rid = run_id.encode() if isinstance(run_id, str) else run_id
        if not 0 < len(rid) <= 32:
            raise ValueError(f"run_id must be 1 to 32 bytes, got {len(rid)}")
        return Pubkey.find_program_address([b"coordinator", rid], self.program_id)[0]

    def authorization_pda(self, instance: Pubkey, grantee: Pubkey, account: Pubkey) -> Pubkey:
        """["authorization", instance, coordinator account, grantee]: the account binds a grant to one
        incarnation of the run, so a run re-created under the same run_id starts with no grants."""
        return Pubkey.find_program_address([b"authorization", bytes(instance), bytes(account), bytes(grantee)],
                                           self.program_id)[0]

    @cached_property
    def account_size(self) -> int:
        """Bytes of a CoordinatorAccount (the owner creates it with this size before init_run)."""
        return self.program.account["CoordinatorAccount"].size

    # ---- instructions -------------------------------------------------------------------------------
    def ix(self, name: str, *args: Any, accounts: dict[str, Pubkey]) -> Instruction:
        from anchorpy import Context

        return self.program.instruction[name](*args, ctx=Context(accounts=accounts))

    def init_run(self, payer: Pubkey, run_id: str, account: Pubkey, main_authority: Pubkey,
                 join_authority: Pubkey) -> Instruction:
        return self.ix("init_run", run_id, main_authority, join_authority, accounts={
            "payer": payer, "instance": self.instance_pda(run_id), "coordinator_account": account,
            "system_program": SYSTEM_PROGRAM})

    def owner_ix(self, name: str, authority: Pubkey, instance: Pubkey, account: Pubkey, *args: Any) -> Instruction:
        accounts = {"authority": authority, "instance": instance, "coordinator_account": account}
        if name == "set_paused":
            accounts["slot_hashes"] = SLOT_HASHES
        return self.ix(name, *args, accounts=accounts)

    def config(self, **fields: int) -> Any:
        fields.setdefault("pad", [0] * 3)
        fields.setdefault("verifiers_per_mille", DEFAULT_VERIFIERS_PER_MILLE)  # the model Config's default
        return self.program.type["Config"](**fields)

    def authorize(self, name: str, join_authority: Pubkey, instance: Pubkey, grantee: Pubkey,
                  account: Pubkey) -> Instruction:
        """authorize/revoke `grantee` for the run whose coordinator account is `account`."""
        accounts = {"join_authority": join_authority, "instance": instance,
                    "authorization": self.authorization_pda(instance, grantee, account)}
        if name == "authorize":
            accounts["system_program"] = SYSTEM_PROGRAM
        return self.ix(name, grantee, accounts=accounts)

    def join_run(self, user: Pubkey, instance: Pubkey, account: Pubkey, p2p: Pubkey, addr_hint: str,
                 grantee: Pubkey = ANYONE, prove_p2p: bool = False, evictee: Pubkey | None = None) -> Instruction:
        """`prove_p2p`: the P2P key also signs (a 6th account), which lets the claim take the key back from
        a client that registered it without holding it. `evictee`: the wallet whose slot (holding points) the
        join takes (coordinator_sdk.points.evictee): its points PDA and the System program follow as 7th and
        8th accounts (a non-signer stands in for the 6th), and the user becomes writable to pay the PDA's rent."""
        accounts = {"user": user, "instance": instance, "coordinator_account": account,
                    "authorization": self.authorization_pda(instance, grantee, account), "slot_hashes": SLOT_HASHES}
        ix = self.ix("join_run", p2p, addr_hint, accounts=accounts)
        metas = list(ix.accounts)
        if prove_p2p or evictee is not None:
            metas.append(AccountMeta(p2p, True, False) if prove_p2p else AccountMeta(SYSTEM_PROGRAM, False, False))
        if evictee is not None:
            metas[0] = AccountMeta(user, True, True)
            metas += [AccountMeta(self.points_pda(account, evictee), False, True),
                      AccountMeta(SYSTEM_PROGRAM, False, False)]
        return Instruction(ix.program_id, ix.data, metas)

    def points_pda(self, account: Pubkey, wallet: Pubkey) -> Pubkey:
        """["points", coordinator account, wallet]: the wallet's banked points (coordinator_sdk.points)."""
        return points_pda(account, wallet, self.program_id)

    def client_ix(self, name: str, user: Pubkey, instance: Pubkey, account: Pubkey, *args: Any) -> Instruction:
        return self.ix(name, *args, accounts={"user": user, "instance": instance, "coordinator_account": account,
                                              "slot_hashes": SLOT_HASHES})

    # ---- accounts -----------------------------------------------------------------------------------
    def decode(self, raw: bytes) -> Any:
        """Decode any of the program's accounts (dispatch on the discriminator) with anchorpy."""
        return self.program.coder.accounts.decode(raw)

    @cached_property
    def _compiler(self) -> Any:
        """The same layout as a numpy dtype (coordinator_sdk.fast_decode), for the differential fuzzer."""
        from coordinator_sdk.fast_decode import LayoutCompiler

        return LayoutCompiler(self.idl_json)

    @cached_property
    def _layouts(self) -> LayoutTable:
        return LayoutTable(self.idl_json)

    def decode_state(self, raw: bytes) -> Any:
        """A CoordinatorAccount in microseconds (a view that unpacks each field as it is read); checks the
        discriminator."""
        if raw[:8] != ACCOUNT_DISCRIMINATOR:
            raise ValueError("not a CoordinatorAccount (wrong discriminator)")
        return read_account(self._layouts, "CoordinatorAccount", raw)

    def decode_instance(self, raw: bytes) -> Any:
        """A RunInstance with the same layout decoder (the same field names and values as `decode`'s)."""
        if raw[:8] != INSTANCE_DISCRIMINATOR:
            raise ValueError("not a RunInstance (wrong discriminator)")
        return read_account(self._layouts, "RunInstance", raw)
