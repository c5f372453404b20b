"""`Coordinator`: one run's coordinator program over any Solana JSON-RPC endpoints (the localnet,
solana-test-validator, devnet). Every instruction is a method that builds, signs with the wallet, sends
and confirms; program failures raise exceptions named after the program's errors, logs attached."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from solana.rpc.types import MemcmpOpts
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account

from coordinator_sdk.codec import ANYONE, CoordinatorCodec
from coordinator_sdk.keypair_file import read_keypair
from coordinator_sdk.points import CLIENT_POINTS_SIZE, evictee
from coordinator_sdk.program_ids import default_program_ids, use_program_ids  # noqa: F401  (their old home)
from coordinator_sdk.rpc_pool import RpcPool
from coordinator_sdk.run_reads import BANKED_OWNER_OFFSET, RunNotFound, account_gone, banked_from, default_codec, no_run  # noqa: F401  (their old home)
from coordinator_sdk.sender import TransactionSender, UnitPrice

if TYPE_CHECKING:
    from coordinator_sdk.account_stream import AccountStream

# Every coordinator instruction is tested at <= 30k CU at 256 clients (bench/program_cu.py, README); a third
# more is the limit they are sent with, which spares a simulation round trip per transaction. One that needs
# more (a join at an unusually low PDA bump) fails preflight with ComputationalBudgetExceeded and the sender
# then measures it by simulation.
COORDINATOR_CU_LIMIT = 40_000


class Coordinator:
    def __init__(self, rpc_urls: str | list[str], run_id: str, wallet: Keypair, ws_url: str | None = None,
                 codec: CoordinatorCodec | None = None, attempts: int = 4, rpc_timeout: float = 10.0,
                 unit_price: UnitPrice | Literal["default"] = "default") -> None:
        self.codec = codec or default_codec()
        self.pool = RpcPool([rpc_urls] if isinstance(rpc_urls, str) else list(rpc_urls), attempts=attempts,
                            timeout=rpc_timeout)
        self.sender = TransactionSender(self.pool, self.codec.errors, unit_price=unit_price)
        self.run_id, self.wallet, self.ws_url = run_id, wallet, ws_url
        self.instance = self.codec.instance_pda(run_id)
        self._account: Pubkey | None = None

    @classmethod
    def from_wallet_file(cls, rpc_urls: str | list[str], run_id: str, path: str | Path, **kw: Any) -> Coordinator:
        """`path` may start with `~` (the Solana default wallet is `~/.config/solana/id.json`)."""
        return cls(rpc_urls, run_id, read_keypair(Path(path).expanduser()), **kw)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Coordinator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- reading ------------------------------------------------------------------------------------
    async def _raw(self, key: Pubkey) -> bytes | None:
        return await self.pool.read_account(key)  # as new as our latest write (minContextSlot)

    async def fetch_instance(self) -> Any:
        raw = await self._raw(self.instance)
        if raw is None:
            raise no_run(self.codec, self.run_id, self.instance)
        return self.codec.decode_instance(raw)

    async def account_key(self) -> Pubkey:
        if self._account is None:
            self._account = (await self.fetch_instance()).coordinator_account
        return self._account

    async def fetch_state(self) -> Any:
        raw = await self._raw(await self.account_key())
        if raw is None:
            raise account_gone(self.run_id)
        return self.codec.decode_state(raw)

    async def banked_points(self) -> dict[bytes, tuple[int, int]]:
        """Wallet -> (earned, slashed) banked in this run when newcomers took their registry slots: every
        ClientPoints PDA of the coordinator account (getProgramAccounts, size + account filters)."""
        account = await self.account_key()
        res = await self.pool.call(lambda c: c.get_program_accounts(
            self.codec.program_id, encoding="base64",
            filters=[CLIENT_POINTS_SIZE, MemcmpOpts(offset=BANKED_OWNER_OFFSET, bytes=str(account))]))
        return banked_from([bytes(a.account.data) for a in res.value])

    async def states(self, poll_interval: float = 1.0) -> AccountStream:
        """Decoded states as they change (use `async with`); only strictly newer nonces come out."""
        from coordinator_sdk.account_stream import AccountStream  # websockets: only for those who follow

        return AccountStream(self.pool, await self.account_key(), self.codec.decode_state, lambda s: s.nonce,
                             ws_url=self.ws_url, poll_interval=poll_interval)

    # ---- sending ------------------------------------------------------------------------------------
    async def _send(self, ix: Any, *extra: Keypair, label: str = "") -> str:
        return await self.sender.send([ix], [self.wallet, *extra], cu_limit=COORDINATOR_CU_LIMIT, label=label)

    async def _owner(self, name: str, *args: Any) -> str:
        return await self._send(self.codec.owner_ix(name, self.wallet.pubkey(), self.instance,
                                                    await self.account_key(), *args))

    async def _client(self, name: str, *args: Any) -> str:
        return await self._send(self.codec.client_ix(name, self.wallet.pubkey(), self.instance,
                                                     await self.account_key(), *args), label=name)

    # ---- the run owner ------------------------------------------------------------------------------
    async def create_run(self, join_authority: Pubkey | None = None, open_to_all: bool = True) -> Pubkey:
        """Create the coordinator account and the run (the wallet is the main authority). The new account
        signs init_run too: the program refuses to initialise an account whose key holder did not sign."""
        account = Keypair()
        size = self.codec.account_size
        rent = (await self.pool.call(lambda c: c.get_minimum_balance_for_rent_exemption(size))).value
        join = join_authority or self.wallet.pubkey()
        await self.sender.send([
            create_account(CreateAccountParams(from_pubkey=self.wallet.pubkey(), to_pubkey=account.pubkey(),
                                               lamports=rent, space=size, owner=self.codec.program_id)),
            self.codec.init_run(self.wallet.pubkey(), self.run_id, account.pubkey(), self.wallet.pubkey(), join),
        ], [self.wallet, account])
        self._account = account.pubkey()
        if open_to_all and join == self.wallet.pubkey():
            await self.authorize(ANYONE)
        return account.pubkey()

    async def update_config(self, **fields: int) -> str:
        return await self._owner("update_config", self.codec.config(**fields))

    async def update_metadata(self, name: str, description: str, num_parameters: int, vocab_size: int) -> str:
        return await self._owner("update_metadata", name, description, num_parameters, vocab_size)

    async def update_model(self, model: Any) -> str:
        return await self._owner("update_model", model)

    async def update_progress(self, step: int) -> str:
        return await self._owner("update_progress", step)

    async def set_checkpoint(self, reference: str) -> str:
        """Name the weights the run starts from (owner only, while halted)."""
        return await self._owner("set_checkpoint", reference)

    async def set_paused(self, paused: bool) -> str:
        return await self._owner("set_paused", paused)

    async def set_future_epoch_rates(self, earning: int, slashing: int) -> str:
        return await self._owner("set_future_epoch_rates", earning, slashing)

    async def authorize(self, grantee: Pubkey) -> str:
        return await self._send(self.codec.authorize("authorize", self.wallet.pubkey(), self.instance, grantee,
                                                     await self.account_key()))

    async def revoke(self, grantee: Pubkey) -> str:
        return await self._send(self.codec.authorize("revoke", self.wallet.pubkey(), self.instance, grantee,
                                                     await self.account_key()))

    async def close_run(self) -> str:
        return await self._send(self.codec.ix("close_run", accounts={
            "authority": self.wallet.pubkey(), "instance": self.instance,
            "coordinator_account": await self.account_key()}))

    # ---- clients ------------------------------------------------------------------------------------
    async def join_run(self, p2p: Pubkey, addr_hint: str, grantee: Pubkey = ANYONE,
                       p2p_keypair: Keypair | None = None) -> str:
        """Join (or rejoin) with P2P key `p2p`. A P2P key is unique in a run; passing its keypair (an ed25519
        iroh secret key) proves the claim and takes the key back from a wallet that registered it first.
        A join into a full registry passes the points PDA of the wallet whose slot it takes, predicted from the
        account as read now (if the registry changes before it lands, the program refuses with
        WrongPointsAccount and a retry predicts again)."""
        if p2p_keypair is not None and p2p_keypair.pubkey() != p2p:
            raise ValueError("p2p_keypair does not match p2p")
        out = evictee(await self.fetch_state(), self.wallet.pubkey())
        ix = self.codec.join_run(self.wallet.pubkey(), self.instance, await self.account_key(), p2p, addr_hint,
                                 grantee, prove_p2p=p2p_keypair is not None, evictee=out)
        return await self._send(ix, *([p2p_keypair] if p2p_keypair else []), label="join_run")

    async def withdraw(self) -> str:
        return await self._client("withdraw")

    async def tick(self) -> str:
        return await self._client("tick")

    async def warmup_witness(self) -> str:
        return await self._client("warmup_witness")

    async def witness(self, participants: bytes, broadcast_bloom: bytes, broadcast_merkle: bytes, step: int,
                      loss: float = 0.0, tokens_per_sec: float = 0.0, bandwidth_per_sec: float = 0.0) -> str:
        """participants: 32 bytes, one bit per epoch client of the round (coordinator_sdk.participation)."""
        return await self._client("witness", list(participants), list(broadcast_bloom), list(broadcast_merkle),
                                  step, loss, tokens_per_sec, bandwidth_per_sec)

    async def health_check(self, target_index: int) -> str:
        return await self._client("health_check", target_index)

    async def verdict(self, trainer_index: int, trainer_p2p: bytes, height: int, passed: bool, result_hash: bytes,
                      ef_hash: bytes) -> str:
        """Post this client's recomputation of trainer `trainer_index`'s (current epoch-client index; its P2P key
        `trainer_p2p`, which the program checks is still the one at that index: WrongTrainer once the list was
        compacted since it was read) result of round `height`, with the result commitment and error-feedback
        state hash it checked. Only a verifier
        drawn by coordinator_sdk.verdicts.eligible may post, once per trainer and round, in increasing
        (height, trainer key) order; two fails (more than the passes) on one result, or by two verifiers over the
        epoch's results (more than the epoch's passes), eject and slash the trainer."""
        return await self._client("verdict", trainer_index, list(trainer_p2p), height, int(passed), list(result_hash),
                                  list(ef_hash))

    async def checkpoint(self, reference: str) -> str:
        """Vote, in Cooldown, for the checkpoint the next epoch starts from; the run adopts a reference once a
        strict majority of the epoch's healthy clients voted for it (voting again replaces one's vote)."""
        return await self._client("checkpoint", reference)
