"""Build, sign, send and confirm a transaction the way a long-running client needs it.

Why each step: preflight failures come back as named program errors with the simulation logs; a
transaction whose blockhash expires before it lands is re-signed with a fresh blockhash and sent again,
which is safe because once the block height passes `lastValidBlockHeight` the old one can never land;
transport failures fail over through the RpcPool."""
from __future__ import annotations

import asyncio
import json

from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.types import TxOpts
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.transaction import Transaction

from coordinator_sdk.program_errors import ErrorMap, TransactionFailed
from coordinator_sdk.rpc_pool import RpcPool

_RETRYABLE_PREFLIGHT = ("BlockhashNotFound",)
RESEND_S = 1.5


def err_json(err: object) -> object:
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"] if err is not None else None


class TransactionSender:
    def __init__(self, pool: RpcPool, errors: ErrorMap | None = None, attempts: int = 3, poll: float = 0.2,
                 confirm_timeout: float = 90.0) -> None:
        self.pool, self.errors = pool, errors or ErrorMap([])
        self.attempts, self.poll, self.confirm_timeout = attempts, poll, confirm_timeout
        self.resent = 0  # signed transactions sent again while waiting for them to land

    async def send(self, instructions: list[Instruction], signers: list[Keypair], payer: Keypair | None = None) -> str:
        """Send and wait until confirmed; returns the signature or raises a named error."""
        payer = payer or signers[0]
        unique = list({bytes(k.pubkey()): k for k in [payer, *signers]}.values())
        last_problem = "no attempt made"
        for _ in range(self.attempts):
            latest = (await self.pool.call(lambda c: c.get_latest_blockhash(Confirmed))).value
            tx = Transaction.new_signed_with_payer(instructions, payer.pubkey(), unique, latest.blockhash)
            try:
                resp = await self.pool.call(lambda c, raw=bytes(tx): c.send_raw_transaction(
                    raw, opts=TxOpts(skip_confirmation=True, preflight_commitment=Confirmed)))
            except RPCException as e:
                data = getattr(e.args[0], "data", None) if e.args else None
                err = err_json(getattr(data, "err", None)) if data is not None else None
                logs = list(getattr(data, "logs", None) or [])
                if err in _RETRYABLE_PREFLIGHT:
                    last_problem = f"preflight: {err}"
                    continue
                if err == "AlreadyProcessed":  # this very signed transaction already landed: report its outcome
                    status = await self._wait(tx.signatures[0], latest.last_valid_block_height)
                    if status is not None and status.err is None:
                        return str(tx.signatures[0])
                    if status is not None:
                        logs = await self.logs(tx.signatures[0])
                        raise self.errors.exception_for(err_json(status.err), logs) from None
                if err is not None:
                    raise self.errors.exception_for(err, logs) from None
                raise TransactionFailed(f"the node refused the transaction: {e}") from None
            status = await self._wait(resp.value, latest.last_valid_block_height, bytes(tx))
            if status is None:
                last_problem = f"{resp.value} expired before it landed"
                continue
            if status.err is not None:
                raise self.errors.exception_for(err_json(status.err), await self.logs(resp.value))
            return str(resp.value)
        raise TransactionFailed(f"transaction not confirmed after {self.attempts} attempts ({last_problem})")

    async def _wait(self, sig: Signature, last_valid_block_height: int, raw: bytes | None = None):
        """The status once the transaction landed, or None once its blockhash can no longer land. While it
        waits, the same signed transaction is sent again every RESEND_S (a node that restarted or a leader
        that dropped it would otherwise leave us waiting out the whole blockhash lifetime, ~60 s); the same
        signature can land at most once, so resending is always safe."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout
        next_resend = loop.time() + RESEND_S
        while loop.time() < deadline:
            status = (await self.pool.call(lambda c: c.get_signature_statuses([sig]))).value[0]
            if status is not None:
                return status
            height = (await self.pool.call(lambda c: c.get_block_height(Confirmed))).value
            if height > last_valid_block_height:
                return None
            if raw is not None and loop.time() >= next_resend:
                next_resend = loop.time() + RESEND_S
                self.resent += 1
                try:
                    await self.pool.call(lambda c: c.send_raw_transaction(
                        raw, opts=TxOpts(skip_confirmation=True, skip_preflight=True)))
                except Exception:  # already processed, or the node is still down: the status loop decides
                    pass
            await asyncio.sleep(self.poll)
        return None

    async def logs(self, sig: Signature | str) -> list[str]:
        sig = Signature.from_string(sig) if isinstance(sig, str) else sig
        tx = (await self.pool.call(lambda c: c.get_transaction(sig, max_supported_transaction_version=0))).value
        return list(tx.transaction.meta.log_messages or []) if tx and tx.transaction.meta else []
