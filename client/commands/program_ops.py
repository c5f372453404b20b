"""What `psyche program deploy|upgrade|...` send, over JSON-RPC through the project's TransactionSender:
the buffer written in packet-sized chunks, concurrently, each chunk retried, resuming from what a buffer
already holds (an interrupted deploy re-run with the same buffer keypair sends only the missing chunks).

Why the chunk leaves room: the sender may add ComputeBudget instructions (unit limit, unit price) to
every transaction, and a transaction over 1232 bytes is refused by every node."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from client.errors import exception_text
from coordinator_sdk.program_errors import TransactionFailed
from coordinator_sdk.rpc_pool import RpcPool
from coordinator_sdk.sender import TransactionSender
from programs import loader as ldr

COMPUTE_BUDGET_ROOM = 52  # ComputeBudget program key (32) + SetComputeUnitLimit (8) + SetComputeUnitPrice (12)
EXTRA_SIGNER_ROOM = 96    # a second signature (64) and its key (32), when the authority is not the payer
CONCURRENCY = 16
CHUNK_ATTEMPTS = 4


class DeployFailed(Exception):
    """A deploy step failed; the message says which and what to do next."""


@dataclass
class Progress:
    """Transactions sent by this command (resends of the same signed transaction counted separately)."""
    transactions: int = 0
    chunks_written: int = 0
    chunks_skipped: int = 0
    resent: int = 0  # the same signed transactions sent again while waiting for them to land
    started: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        return time.monotonic() - self.started


def chunk_size(payer: Pubkey, authority: Pubkey) -> int:
    return ldr.WRITE_CHUNK - COMPUTE_BUDGET_ROOM - (0 if payer == authority else EXTRA_SIGNER_ROOM)


class LoaderClient:
    def __init__(self, pool: RpcPool, payer: Keypair, progress: Progress | None = None) -> None:
        self.pool, self.payer = pool, payer
        self.sender = TransactionSender(pool)
        self.progress = progress or Progress()

    async def send(self, ixs: list, signers: list[Keypair]) -> str:
        self.progress.transactions += 1
        try:
            return await self.sender.send(ixs, [self.payer, *signers], payer=self.payer)
        finally:
            self.progress.resent = getattr(self.sender, "resent", 0)

    async def account(self, key: Pubkey):
        return (await self.pool.call(lambda c: c.get_account_info(key, commitment=Confirmed))).value

    async def slot(self) -> int:
        return (await self.pool.call(lambda c: c.get_slot(Confirmed))).value

    async def rent(self, size: int) -> int:
        return (await self.pool.call(lambda c: c.get_minimum_balance_for_rent_exemption(size))).value

    async def state(self, key: Pubkey) -> ldr.LoaderState | None:
        acc = await self.account(key)
        if acc is None:
            return None
        if acc.owner != ldr.LOADER_V3:
            raise DeployFailed(f"{key} is owned by {acc.owner}, not the upgradeable loader")
        return ldr.decode_state(bytes(acc.data))

    async def write_buffer(self, buffer: Keypair, authority: Keypair, elf: bytes) -> None:
        """Create the buffer if absent, then write every chunk it does not hold yet; checks the result."""
        state = await self.state(buffer.pubkey())
        if state is None:
            lamports = await self.rent(ldr.BUFFER_META + len(elf))
            await self.send(ldr.create_buffer(self.payer.pubkey(), buffer.pubkey(), authority.pubkey(), len(elf),
                                              lamports), [buffer])
            held = bytes(len(elf))
        elif state.kind != "buffer":
            raise DeployFailed(f"{buffer.pubkey()} is a {state.kind} account, not a buffer")
        elif state.authority != authority.pubkey():
            raise DeployFailed(f"buffer {buffer.pubkey()} has authority {state.authority}, not "
                               f"{authority.pubkey()}")
        elif len(state.elf) != len(elf):
            raise DeployFailed(f"buffer {buffer.pubkey()} holds {len(state.elf)} bytes, the program has {len(elf)}: "
                               f"close it (psyche program close {buffer.pubkey()}) or use another buffer")
        else:
            held = state.elf
        size = chunk_size(self.payer.pubkey(), authority.pubkey())
        for _ in range(2):  # a second pass rewrites whatever the check below finds different
            todo = [off for off in range(0, len(elf), size) if held[off:off + size] != elf[off:off + size]]
            self.progress.chunks_skipped += len(range(0, len(elf), size)) - len(todo)
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(off: int, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    ix = ldr.write(buffer.pubkey(), authority.pubkey(), off, elf[off:off + size])
                    for attempt in range(CHUNK_ATTEMPTS):
                        try:
                            await self.send([ix], [authority])
                            self.progress.chunks_written += 1
                            return
                        except (TransactionFailed, ConnectionError) as e:
                            if attempt + 1 == CHUNK_ATTEMPTS:
                                raise DeployFailed(f"writing bytes {off}..{off + size} into buffer "
                                                   f"{buffer.pubkey()} failed {CHUNK_ATTEMPTS} times "
                                                   f"({exception_text(e)}); "
                                                   "run the command again to resume") from None
                            await asyncio.sleep(0.5 * (attempt + 1))

            await asyncio.gather(*(one(off) for off in todo))
            state = await self.state(buffer.pubkey())
            held = state.elf if state is not None else b""
            if held == elf:
                return
        raise DeployFailed(f"buffer {buffer.pubkey()} does not hold the program after writing it")

    async def deploy(self, program: Keypair, buffer: Keypair, authority: Keypair, elf: bytes,
                     max_len: int) -> str:
        if await self.account(program.pubkey()) is not None:
            raise DeployFailed(f"program {program.pubkey()} already exists: use `psyche program upgrade`")
        await self.check_funds(len(elf), authority.pubkey(), ldr.PROGRAM_SIZE, ldr.PROGRAMDATA_META + max_len)
        await self.write_buffer(buffer, authority, elf)
        ixs = ldr.deploy_with_max_data_len(self.payer.pubkey(), program.pubkey(), buffer.pubkey(),
                                           authority.pubkey(), await self.rent(ldr.PROGRAM_SIZE), max_len)
        return await self.send_keeping_buffer(buffer.pubkey(), ixs, [program, authority])

    async def check_funds(self, elf_len: int, authority: Pubkey, *accounts: int) -> None:
        """Refuse up front, saying what it costs, rather than fail half-way with the System program's Custom 1:
        the buffer's rent is held while writing and comes back at deploy, before ProgramData is paid for, so
        the wallet needs max(buffer, program + ProgramData) plus the fees."""
        chunks = -(-elf_len // chunk_size(self.payer.pubkey(), authority))
        signatures = (chunks + 2) * (1 if authority == self.payer.pubkey() else 2) + 2
        new_accounts = sum([await self.rent(size) for size in accounts])
        need = max(await self.rent(ldr.BUFFER_META + elf_len), new_accounts) + signatures * 5000
        have = (await self.pool.call(lambda c: c.get_balance(self.payer.pubkey(), commitment=Confirmed))).value
        if have < need:
            raise DeployFailed(f"needs {need / 1e9:.9f} SOL (rent and fees), the wallet {self.payer.pubkey()} has "
                               f"{have / 1e9:.9f}")

    async def send_keeping_buffer(self, buffer: Pubkey, ixs: list, signers: list[Keypair]) -> str:
        """The final deploy/upgrade transaction; if the loader refuses it, say where the written buffer is."""
        try:
            return await self.send(ixs, signers)
        except TransactionFailed as e:
            first = str(e).splitlines()[0]
            raise DeployFailed(f"{first}; the buffer {buffer} keeps the program (run again to retry, or "
                               f"reclaim it: psyche program close {buffer})") from None

    async def upgrade(self, program_id: Pubkey, buffer: Keypair, authority: Keypair, elf: bytes) -> str:
        pd = await self.programdata(program_id)  # the authority is left to the loader: its error is the answer
        extended_at = None
        if len(elf) > len(pd.elf):  # grow ProgramData first, as `solana program deploy` does for an upgrade
            more = max(len(elf) - len(pd.elf), ldr.MIN_EXTEND_BYTES)  # validators refuse smaller extensions
            await self.check_funds(len(elf), authority.pubkey(), more)
            await self.send([ldr.extend_program(program_id, self.payer.pubkey(), more)], [])
            extended_at = await self.slot()
        await self.write_buffer(buffer, authority, elf)
        while extended_at is not None and await self.slot() <= extended_at:
            await asyncio.sleep(0.2)  # the loader refuses an Upgrade in the slot of the extension
        ix = ldr.upgrade(program_id, buffer.pubkey(), authority.pubkey(), self.payer.pubkey())
        return await self.send_keeping_buffer(buffer.pubkey(), [ix],
                               [authority])

    async def programdata(self, program_id: Pubkey) -> ldr.LoaderState:
        state = await self.state(program_id)
        if state is None:
            raise DeployFailed(f"no program at {program_id}")
        if state.kind != "program":
            raise DeployFailed(f"{program_id} is a {state.kind} account, not a program")
        pd = await self.state(state.programdata)
        if pd is None or pd.kind != "programdata":
            raise DeployFailed(f"program {program_id} has no ProgramData (closed?)")
        return pd

    async def buffers_of(self, authority: Pubkey) -> list[tuple[Pubkey, int]]:
        """(address, lamports) of every buffer whose authority is `authority` (getProgramAccounts + memcmp)."""
        import based58
        from solana.rpc.types import MemcmpOpts

        head = based58.b58encode(b"\x01\0\0\0\x01").decode()  # Buffer tag, then Some(authority)
        resp = await self.pool.call(lambda c: c.get_program_accounts(
            ldr.LOADER_V3, commitment=Confirmed, encoding="base64",
            filters=[MemcmpOpts(offset=0, bytes=head), MemcmpOpts(offset=5, bytes=str(authority))]))
        return [(a.pubkey, a.account.lamports) for a in resp.value]
