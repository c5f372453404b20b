"""`Treasurer`: a treasurer-administered run over any Solana JSON-RPC endpoints. Every treasurer instruction
is an async method that builds, signs, sends and confirms; reads use only `getAccountInfo` (base64) and
decode the SPL Token layouts here, so it works on any node. Program failures raise exceptions named after
either program's errors (a coordinator refusal inside a CPI keeps its coordinator name)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from coordinator_sdk import spl_token as spl
from coordinator_sdk.client import Coordinator, RunNotFound, default_codec, default_program_ids
from coordinator_sdk.codec import ANYONE
from coordinator_sdk.keypair_file import read_keypair
from coordinator_sdk.points import decode_banked
from coordinator_sdk.sender import TransactionSender, UnitPrice
from coordinator_sdk.treasurer_codec import TreasurerCodec

_CODEC: TreasurerCodec | None = None


def default_treasurer_codec() -> TreasurerCodec:
    """The treasurer codec at the process's default ids (coordinator_sdk.client.use_program_ids)."""
    global _CODEC
    coordinator, tid = default_codec(), default_program_ids()["treasurer"]
    if _CODEC is None or _CODEC.coordinator is not coordinator or (tid is not None and _CODEC.program_id != tid):
        _CODEC = TreasurerCodec(coordinator=coordinator) if tid is None else TreasurerCodec(tid, coordinator)
    return _CODEC


async def administered_by_treasurer(coordinator: Coordinator, codec: TreasurerCodec | None = None) -> bool:
    """Whether the run's main authority is its treasurer Run PDA (then owner instructions must go through
    the treasurer). False when the run does not exist yet."""
    raw = await coordinator._raw(coordinator.instance)
    if raw is None:
        return False
    codec = codec or default_treasurer_codec()
    return coordinator.codec.decode(raw).main_authority == codec.run_for(coordinator.run_id)


class NotATreasurerRun(RunNotFound):
    """The run exists on the coordinator but no treasurer Run administers it (or the reverse)."""


class WrongCoordinator(NotATreasurerRun):
    """The treasurer Run of this run id is bound (at run_create) to another coordinator program than the one
    configured: anyone can create a Run bound to a coordinator of their own, whose points it pays, so a client
    must never fund, claim from or steer it believing it is the configured coordinator's run."""


@dataclass(frozen=True)
class Rewards:
    """One participant's standing: points from the coordinator, what was claimed, what is claimable."""
    user: Pubkey
    earned: int
    penalised: int
    claimed_points: int
    claimable_points: int
    collateral_per_point: int
    claimed_amount: int
    claimable_amount: int
    decimals: int
    banked_earned: int = 0  # of earned/penalised: banked when a newcomer took the wallet's registry slot
    banked_penalised: int = 0

    def as_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # (asdict deep-copies: Pubkey can't)
        return {k: str(v) if isinstance(v, Pubkey) else v for k, v in values.items()}


class Treasurer:
    def __init__(self, rpc_urls: str | list[str], run_id: str, wallet: Keypair, ws_url: str | None = None,
                 codec: TreasurerCodec | None = None, attempts: int = 4,
                 unit_price: UnitPrice | Literal["default"] = "default") -> None:
        self.codec = codec or default_treasurer_codec()
        self.coordinator = Coordinator(rpc_urls, run_id, wallet, ws_url=ws_url, codec=self.codec.coordinator,
                                       attempts=attempts, unit_price=unit_price)
        self.pool = self.coordinator.pool
        self.sender = TransactionSender(self.pool, self.codec.errors, unit_price=unit_price)
        self.run_id, self.wallet = run_id, wallet
        self.run = self.codec.run_for(run_id)
        self.instance = self.coordinator.instance

    @classmethod
    def from_wallet_file(cls, rpc_urls: str | list[str], run_id: str, path: str | Path, **kw: Any) -> Treasurer:
        return cls(rpc_urls, run_id, read_keypair(Path(path)), **kw)

    async def close(self) -> None:
        await self.coordinator.close()

    async def __aenter__(self) -> Treasurer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- reading ------------------------------------------------------------------------------------
    async def raw(self, key: Pubkey) -> bytes | None:
        """An account's data; None when it does not exist or has none: anyone can send lamports to a PDA
        before it is created (the treasurer takes such an address over), and that is still no record."""
        return await self.coordinator._raw(key) or None

    async def fetch_run(self) -> Any:
        raw = await self.raw(self.run)
        if raw is None:
            raise NotATreasurerRun(f"no treasurer run for {self.run_id!r} (Run account {self.run} of treasurer "
                                   f"program {self.codec.program_id} does not exist)")
        run = self.codec.decode_run(raw)
        if run.coordinator_program != self.codec.coordinator.program_id:
            raise WrongCoordinator(f"treasurer run {self.run_id!r} administers coordinator program "
                                   f"{run.coordinator_program}, not {self.codec.coordinator.program_id} (the one "
                                   "configured); refusing to use it")
        return run

    async def fetch_participant(self, user: Pubkey) -> Any | None:
        raw = await self.raw(self.codec.participant_pda(self.run, user))
        return None if raw is None else self.codec.decode_participant(raw)

    async def token_account(self, key: Pubkey) -> spl.TokenAccount | None:
        raw = await self.raw(key)
        return None if raw is None else spl.decode_token_account(raw)

    async def mint(self) -> spl.Mint:
        run = await self.fetch_run()
        raw = await self.raw(run.collateral_mint)
        if raw is None:
            raise NotATreasurerRun(f"the run's mint {run.collateral_mint} does not exist")
        return spl.decode_mint(raw)

    async def vault_balance(self) -> int:
        run = await self.fetch_run()
        vault = await self.token_account(run.collateral_vault)
        return vault.amount if vault else 0

    async def token_balance(self, owner: Pubkey) -> int:
        """The owner's balance in the run's mint (its associated token account; 0 if it has none)."""
        return (await self.token_balances([owner]))[owner]

    async def many(self, keys: list[Pubkey]) -> list[bytes | None]:
        """Raw data of many accounts with getMultipleAccounts (100 per call, as nodes allow)."""
        out: list[bytes | None] = []
        for i in range(0, len(keys), 100):
            chunk = keys[i:i + 100]
            values = (await self.pool.call(lambda c, chunk=chunk: c.get_multiple_accounts(chunk))).value
            out += [bytes(v.data) or None if v is not None else None for v in values]  # no data: as in raw()
        return out

    async def token_balances(self, owners: list[Pubkey]) -> dict[Pubkey, int]:
        """Each owner's balance in the run's mint (its associated token account; 0 where it has none)."""
        mint = (await self.fetch_run()).collateral_mint
        raws = await self.many([spl.associated_token_address(o, mint) for o in owners])
        return {o: spl.decode_token_account(r).amount if r else 0 for o, r in zip(owners, raws, strict=True)}

    async def rewards(self, user: Pubkey) -> Rewards:
        return (await self._rewards_for([user]))[0]

    async def rewards_table(self) -> list[Rewards]:
        """Every client registered in the run's coordinator account, in registry order, then every wallet
        whose slot a newcomer took (its points banked)."""
        st = await self.coordinator.fetch_state()
        registered = [bytes(c.signer) for c in st.clients[:st.num_clients]]
        evicted = sorted(set(await self.coordinator.banked_points()) - set(registered))
        return await self._rewards_for([Pubkey.from_bytes(k) for k in registered + evicted])

    async def _rewards_for(self, users: list[Pubkey]) -> list[Rewards]:
        run = await self.fetch_run()
        decimals = (await self.mint()).decimals
        st = await self.coordinator.fetch_state()
        points = {bytes(c.signer): (int(c.earned), int(c.slashed)) for c in st.clients[:st.num_clients]}
        records = await self.many([self.codec.participant_pda(self.run, u) for u in users])
        banks = await self.many([self.codec.coordinator.points_pda(run.coordinator_account, u) for u in users])
        rate, out = int(run.collateral_per_point), []
        for user, raw, bank in zip(users, records, banks, strict=True):
            banked_earned, banked_slashed = decode_banked(bank)
            earned, slashed = (v + b for v, b in zip(points.get(bytes(user), (0, 0)), (banked_earned, banked_slashed),
                                                     strict=True))
            part = self.codec.decode_participant(raw) if raw else None
            claimed = int(part.claimed_earned_points) if part else 0
            claimed_amount = int(part.claimed_collateral_amount) if part else 0
            claimable = max(0, max(0, earned - slashed) - claimed)
            out.append(Rewards(user, earned, slashed, claimed, claimable, rate, claimed_amount, claimable * rate,
                               decimals, banked_earned, banked_slashed))
        return out

    # ---- the operator -------------------------------------------------------------------------------
    async def create_run(self, mint: Pubkey, collateral_per_point: int = 1, join_authority: Pubkey | None = None,
                         open_to_all: bool = True) -> Pubkey:
        """Create the coordinator account, then (same transaction) the Run, its vault and the coordinator
        run administered by the Run PDA. The wallet is the Run's main authority."""
        from solders.system_program import CreateAccountParams, create_account

        account, size = Keypair(), self.codec.coordinator.account_size
        rent = (await self.pool.call(lambda c: c.get_minimum_balance_for_rent_exemption(size))).value
        join = join_authority or self.wallet.pubkey()
        await self.sender.send([
            create_account(CreateAccountParams(from_pubkey=self.wallet.pubkey(), to_pubkey=account.pubkey(),
                                               lamports=rent, space=size, owner=self.codec.coordinator.program_id)),
            self.codec.run_create(self.wallet.pubkey(), self.run_id, account.pubkey(), mint, self.wallet.pubkey(),
                                  join, collateral_per_point),
        ], [self.wallet, account])
        self.coordinator._account = account.pubkey()
        if open_to_all and join == self.wallet.pubkey():
            await self.coordinator.authorize(ANYONE)
        return account.pubkey()

    async def update(self, **fields: Any) -> str:
        """run_update with any of metadata=(name, description, num_parameters, vocab_size), config={...},
        model=ModelDescription, progress=step, epoch_rates=(earning, slashing), paused=bool."""
        run = await self.fetch_run()
        return await self.sender.send([self.codec.run_update(self.wallet.pubkey(), self.run, run.coordinator_instance,
                                                             run.coordinator_account, **fields)], [self.wallet])

    async def update_config(self, **config: int) -> str:
        return await self.update(config=config)

    async def update_metadata(self, name: str, description: str, num_parameters: int, vocab_size: int) -> str:
        return await self.update(metadata=(name, description, num_parameters, vocab_size))

    async def update_model(self, model: Any) -> str:
        return await self.update(model=model)

    async def update_progress(self, step: int) -> str:
        return await self.update(progress=step)

    async def set_future_epoch_rates(self, earning: int, slashing: int) -> str:
        return await self.update(epoch_rates=(earning, slashing))

    async def set_paused(self, paused: bool) -> str:
        return await self.update(paused=paused)

    async def set_checkpoint(self, reference: str) -> str:
        return await self.update(checkpoint=reference)

    # The join authority is the operator's own key (not the Run PDA), and anyone may tick: these go to the
    # coordinator directly, so a Treasurer serves wherever a Coordinator administers a run.
    async def authorize(self, grantee: Pubkey) -> str:
        return await self.coordinator.authorize(grantee)

    async def revoke(self, grantee: Pubkey) -> str:
        return await self.coordinator.revoke(grantee)

    async def tick(self) -> str:
        return await self.coordinator.tick()

    async def fetch_state(self) -> Any:
        return await self.coordinator.fetch_state()

    async def fetch_instance(self) -> Any:
        return await self.coordinator.fetch_instance()

    async def _raw(self, key: Pubkey) -> bytes | None:
        return await self.coordinator._raw(key)

    async def fund(self, amount: int) -> str:
        """Top up the vault: a plain SPL transfer_checked from the wallet's associated token account."""
        run = await self.fetch_run()
        decimals = (await self.mint()).decimals
        source = spl.associated_token_address(self.wallet.pubkey(), run.collateral_mint)
        return await self.sender.send([spl.transfer_checked_ix(source, run.collateral_mint, run.collateral_vault,
                                                               self.wallet.pubkey(), amount, decimals)], [self.wallet])

    # ---- participants -------------------------------------------------------------------------------
    async def participant_create(self) -> str:
        return await self.sender.send([self.codec.participant_create(self.wallet.pubkey(), self.run)], [self.wallet])

    async def _has_bank(self, account: Pubkey) -> bool:
        """Whether the wallet has banked points (its coordinator points PDA exists): claims then count them."""
        return await self._raw(self.codec.coordinator.points_pda(account, self.wallet.pubkey())) is not None

    async def participant_claim(self, points: int) -> str:
        run = await self.fetch_run()
        banked = await self._has_bank(run.coordinator_account)
        return await self.sender.send([self.codec.participant_claim(
            self.wallet.pubkey(), self.run, run.coordinator_account, run.collateral_mint, points, banked=banked)],
            [self.wallet])

    async def claim_all(self) -> tuple[str | None, Rewards]:
        """Create the participant record and the token account if missing, then claim everything claimable
        in one transaction. Returns (signature or None when nothing is claimable, the standing before)."""
        me = self.wallet.pubkey()
        standing = await self.rewards(me)
        if standing.claimable_points == 0:
            return None, standing
        run = await self.fetch_run()
        ixs = []
        if await self.fetch_participant(me) is None:
            ixs.append(self.codec.participant_create(me, self.run))
        if await self.token_account(spl.associated_token_address(me, run.collateral_mint)) is None:
            ixs.append(spl.create_ata_idempotent(me, me, run.collateral_mint))
        ixs.append(self.codec.participant_claim(me, self.run, run.coordinator_account, run.collateral_mint,
                                                standing.claimable_points, banked=standing.banked_earned > 0 or
                                                standing.banked_penalised > 0))
        return await self.sender.send(ixs, [self.wallet]), standing
