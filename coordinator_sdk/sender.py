"""Build, sign, send and confirm a transaction the way a production Solana client lands it.

Why each step:
- every transaction sets a compute-unit limit (`SetComputeUnitLimit`): from a simulation plus a margin, or
  from a bound the caller knows (the coordinator's instructions are tested ≤ 30k CU at 256 clients), which
  saves the simulation's round trip; a leader schedules a small declared limit sooner than the 200k default;
- an optional priority fee (`SetComputeUnitPrice`): a fixed price in micro-lamports per CU, or "auto": a
  percentile of `getRecentPrioritizationFees` over the accounts the transaction writes, cached a few seconds;
- the signed transaction is sent again every RESEND_S until it is confirmed or its blockhash expires (a
  congested leader drops transactions silently); only once the block height is past `lastValidBlockHeight`
  -- read *before* the status that says it never landed, so it cannot land afterwards -- is it re-signed
  with a fresh blockhash. If the re-signed one is refused by the program (e.g. DuplicateWitness: the first
  copy did land, and a lagging node hid it), the earlier signatures are looked up in the history and their
  outcome is the answer: one instruction never lands twice, and a landed one is never reported as failed;
- preflight failures come back as named program errors with the simulation logs;
- the slot each write is confirmed at is handed to the RpcPool, whose reads then ask for `minContextSlot`;
- HTTP 429/503 are waited out in the RpcPool as `Retry-After` says."""
from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Literal

from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.types import TxOpts
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.transaction import Transaction

from coordinator_sdk.program_errors import ErrorMap, TransactionFailed
from coordinator_sdk.rpc_pool import RpcPool

_RETRYABLE_PREFLIGHT = ("BlockhashNotFound",)
RESEND_S = 1.5
MAX_CU = 1_400_000
FEE_CACHE_S = 5.0
UnitPrice = int | Literal["auto"] | None
_default_unit_price: UnitPrice = None


def set_default_unit_price(price: UnitPrice) -> None:
    """The unit price of senders made without one (the CLI's --with-compute-unit-price sets it)."""
    global _default_unit_price
    _default_unit_price = price


def err_json(err: object) -> object:
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"] if err is not None else None


def parse_unit_price(text: str | None) -> UnitPrice:
    """`--with-compute-unit-price`: micro-lamports per compute unit, or "auto"."""
    if text is None or text == "":
        return None
    if text == "auto":
        return "auto"
    if not text.isdigit() or int(text) > 10**12:
        raise ValueError(f"compute-unit price {text!r} is neither 'auto' nor micro-lamports 0..1e12")
    return int(text)


def percentile(values: list[int], p: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def unprefixed(err: object, prefix: int) -> object:
    """An InstructionError indexed as the caller's instructions are: without the ComputeBudget ones we put
    in front, so "instruction 0" is still the caller's first."""
    if isinstance(err, dict) and isinstance(err.get("InstructionError"), list) and err["InstructionError"][0] >= prefix:
        return {**err, "InstructionError": [err["InstructionError"][0] - prefix, *err["InstructionError"][1:]]}
    return err


def is_budget_exceeded(err: object) -> bool:
    text = json.dumps(err)
    return "ComputationalBudgetExceeded" in text or "ProgramFailedToComplete" in text


class TransactionSender:
    def __init__(self, pool: RpcPool, errors: ErrorMap | None = None, attempts: int = 3, poll: float = 0.4,
                 confirm_timeout: float = 90.0, unit_price: UnitPrice | Literal["default"] = "default",
                 cu_margin: float = 1.15, fee_percentile: float = 75.0, max_auto_price: int = 10_000_000) -> None:
        self.pool, self.errors = pool, errors or ErrorMap([])
        self.attempts, self.poll, self.confirm_timeout = attempts, poll, confirm_timeout
        self.unit_price = _default_unit_price if unit_price == "default" else unit_price
        self.cu_margin = cu_margin
        self.fee_percentile, self.max_auto_price = fee_percentile, max_auto_price
        self.resent = 0  # signed transactions sent again while waiting for them to land
        self.sent = 0  # sendTransaction calls, resends included
        self.landed = 0
        self.resigned = 0  # blockhashes that expired before their transaction landed
        self.last: dict = {}  # the latest send: {"cu_limit", "unit_price", "slot", "sent", "seconds", "label"}
        self.history: deque[dict] = deque(maxlen=10_000)  # per landed transaction: label, sent, sign->confirmed s
        self._fees: dict[frozenset[str], tuple[float, int]] = {}

    # ---- budget ------------------------------------------------------------------------------------
    async def price_for(self, instructions: list[Instruction]) -> int:
        if self.unit_price != "auto":
            return int(self.unit_price or 0)
        written = frozenset(str(m.pubkey) for ix in instructions for m in ix.accounts if m.is_writable)
        cached = self._fees.get(written)
        if cached and time.monotonic() - cached[0] < FEE_CACHE_S:
            return cached[1]
        rows = await self.pool.raw("getRecentPrioritizationFees", [sorted(written)[:128]])
        price = min(self.max_auto_price, percentile([int(r["prioritizationFee"]) for r in rows], self.fee_percentile))
        self._fees[written] = (time.monotonic(), price)
        return price

    @staticmethod
    def _budget(limit: int, price: int) -> list[Instruction]:
        return [set_compute_unit_limit(limit)] + ([set_compute_unit_price(price)] if price else [])

    async def simulate_limit(self, instructions: list[Instruction], payer: Keypair, unique: list[Keypair],
                             blockhash: object, price: int) -> int:
        """Units the transaction consumes now (at the maximum limit, ComputeBudget instructions included), plus
        the margin; a program error found here is raised as the named exception, as preflight would."""
        tx = Transaction.new_signed_with_payer(self._budget(MAX_CU, price) + instructions, payer.pubkey(), unique,
                                               blockhash)
        sim = (await self.pool.call(lambda c: c.simulate_transaction(tx, commitment=Confirmed))).value
        if sim.err is not None:
            raise self.errors.exception_for(unprefixed(err_json(sim.err), 1 + bool(price)), list(sim.logs or []))
        return min(MAX_CU, int((sim.units_consumed or 0) * self.cu_margin) + 1_000)

    # ---- sending -----------------------------------------------------------------------------------
    async def send(self, instructions: list[Instruction], signers: list[Keypair], payer: Keypair | None = None,
                   cu_limit: int | None = None, label: str = "") -> str:
        """Send and wait until confirmed; returns the signature or raises a named error. `cu_limit`: a bound
        the caller knows (no simulation); without it the limit comes from a simulation. `label` names the
        transaction in `history` (e.g. "witness")."""
        payer = payer or signers[0]
        unique = list({bytes(k.pubkey()): k for k in [payer, *signers]}.values())
        price = await self.price_for(instructions)
        limit, simulated = cu_limit, cu_limit is None
        last_problem = "no attempt made"
        earlier: list[Signature] = []  # signatures whose blockhash expired unseen
        call: dict = {"label": label, "sent": 0, "signed_at": None, "slot": None}  # this call's own record
        for _ in range(self.attempts):
            latest = (await self.pool.call(lambda c: c.get_latest_blockhash(Confirmed))).value
            try:
                if limit is None:
                    limit = await self.simulate_limit(instructions, payer, unique, latest.blockhash, price)
            except TransactionFailed:
                if (done := await self._earlier_outcome(earlier, call)) is not None:
                    return done
                raise
            call["signed_at"] = call["signed_at"] or time.monotonic()
            tx = Transaction.new_signed_with_payer(self._budget(limit, price) + instructions, payer.pubkey(), unique,
                                                   latest.blockhash)
            call.update(cu_limit=limit, unit_price=price)
            self.last = call
            try:
                self.sent += 1
                call["sent"] += 1
                resp = await self.pool.call(lambda c, raw=bytes(tx): c.send_raw_transaction(
                    raw, opts=TxOpts(skip_confirmation=True, preflight_commitment=Confirmed)))
            except RPCException as e:
                data = getattr(e.args[0], "data", None) if e.args else None
                err = err_json(getattr(data, "err", None)) if data is not None else None
                logs = list(getattr(data, "logs", None) or [])
                if err in _RETRYABLE_PREFLIGHT:
                    last_problem = f"preflight: {err}"
                    continue
                if err is not None and is_budget_exceeded(err) and not simulated:
                    limit, simulated = None, True  # the caller's bound was too small: measure it
                    last_problem = f"preflight: {err} at the caller's limit"
                    continue
                if err == "AlreadyProcessed":  # this very signed transaction already landed: report its outcome
                    status = await self._wait(tx.signatures[0], latest.last_valid_block_height, call)
                    if status is not None:
                        return await self._landed(tx.signatures[0], status, call)
                if err is not None:
                    if (done := await self._earlier_outcome(earlier, call)) is not None:
                        return done
                    raise self.errors.exception_for(unprefixed(err, 1 + bool(price)), logs) from None
                raise TransactionFailed(f"the node refused the transaction: {e}") from None
            status = await self._wait(resp.value, latest.last_valid_block_height, call, bytes(tx))
            if status is None:
                last_problem = f"{resp.value} expired before it landed"
                earlier.append(resp.value)
                self.resigned += 1
                continue
            return await self._landed(resp.value, status, call)
        if (done := await self._earlier_outcome(earlier, call)) is not None:
            return done
        raise TransactionFailed(f"transaction not confirmed after {self.attempts} attempts ({last_problem})")

    async def _landed(self, sig: Signature, status: object, call: dict) -> str:
        self.landed += 1
        self.pool.note_write(status.slot)
        seconds = time.monotonic() - (call.get("signed_at") or time.monotonic())
        call.update(slot=status.slot, seconds=seconds)
        self.history.append({"label": call["label"], "sent": call["sent"],
                             "seconds": round(seconds, 4), "ok": status.err is None})
        if status.err is not None:
            prefix = 1 + bool(call.get("unit_price"))
            raise self.errors.exception_for(unprefixed(err_json(status.err), prefix), await self.logs(sig))
        return str(sig)

    async def _earlier_outcome(self, earlier: list[Signature], call: dict) -> str | None:
        """If an earlier copy of this transaction landed after all (a lagging node said it had not), its
        outcome is the answer: its signature, or its program error raised; None if none of them landed."""
        if not earlier:
            return None
        statuses = (await self.pool.call(lambda c: c.get_signature_statuses(
            earlier, search_transaction_history=True))).value
        for sig, status in zip(earlier, statuses, strict=True):
            if status is not None:
                return await self._landed(sig, status, call)
        return None

    async def _wait(self, sig: Signature, last_valid_block_height: int, call: dict, raw: bytes | None = None):
        """The status once the transaction landed, or None once its blockhash can no longer land. While it
        waits, the same signed transaction is sent again every RESEND_S (the same signature lands at most
        once, so resending is always safe). Expiry is decided from a block height read *before* a status
        read: a transaction cannot land after its height passed, so the status read after it is final."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout
        next_resend = loop.time() + RESEND_S
        while loop.time() < deadline:
            expired, due = False, loop.time() >= next_resend
            if due:
                height = (await self.pool.call(lambda c: c.get_block_height(Confirmed))).value
                expired = height > last_valid_block_height
            status = (await self.pool.call(lambda c: c.get_signature_statuses([sig]))).value[0]
            if status is not None or expired:
                return status
            if raw is not None and due:
                self.resent += 1
                self.sent += 1
                call["sent"] += 1
                try:
                    await self.pool.call(lambda c: c.send_raw_transaction(
                        raw, opts=TxOpts(skip_confirmation=True, skip_preflight=True)))
                except Exception:  # already processed, or the node is still down: the status loop decides
                    pass
            if due:
                next_resend = loop.time() + RESEND_S
            await asyncio.sleep(self.poll)
        return None

    async def logs(self, sig: Signature | str) -> list[str]:
        sig = Signature.from_string(sig) if isinstance(sig, str) else sig
        tx = (await self.pool.call(lambda c: c.get_transaction(sig, max_supported_transaction_version=0))).value
        return list(tx.transaction.meta.log_messages or []) if tx and tx.transaction.meta else []
