"""What reading one run takes, shared by the async `Coordinator` and the blocking one-shot reader
(`psyche run status`): which codec, how a missing run reads, and how banked points are decoded. Kept free
of asyncio, httpx and solana-py so that a command that only reads does not import them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coordinator_sdk.codec import LOCALNET_PROGRAM_ID, CoordinatorCodec
from coordinator_sdk.points import CLIENT_POINTS_SIZE, decode_banked
from coordinator_sdk.program_ids import default_program_ids

if TYPE_CHECKING:
    from coordinator_sdk.rpc_sync import SyncRpc

_CODEC: CoordinatorCodec | None = None
BANKED_OWNER_OFFSET = 8  # a ClientPoints PDA holds its coordinator account's key after the discriminator


class RunNotFound(LookupError):
    """No coordinator run with this run_id exists on the cluster."""


def default_codec() -> CoordinatorCodec:
    """The codec at the process's default coordinator id (use_program_ids); the same object until it changes."""
    global _CODEC
    pid = default_program_ids()["coordinator"] or LOCALNET_PROGRAM_ID
    if _CODEC is None or _CODEC.program_id != pid:
        _CODEC = CoordinatorCodec(pid)
    return _CODEC


def no_run(codec: CoordinatorCodec, run_id: str, instance: object) -> RunNotFound:
    return RunNotFound(f"no run {run_id!r} (instance {instance} of coordinator program {codec.program_id}"
                       " does not exist)")


def account_gone(run_id: str) -> RunNotFound:
    return RunNotFound(f"the coordinator account of run {run_id!r} is gone")


def banked_from(datas: list[bytes]) -> dict[bytes, tuple[int, int]]:
    """Wallet -> (earned, slashed) from the data of a run's ClientPoints PDAs."""
    return {data[40:72]: decode_banked(data) for data in datas}


def read_run(rpc: SyncRpc, run_id: str, codec: CoordinatorCodec | None = None) -> tuple[Any, dict]:
    """The decoded coordinator state and the banked points of `run_id`, in three blocking reads."""
    codec = codec or default_codec()
    instance = codec.instance_pda(run_id)
    raw = rpc.account_data(str(instance))
    if raw is None:
        raise no_run(codec, run_id, instance)
    account = codec.decode_instance(raw).coordinator_account
    raw = rpc.account_data(str(account))
    if raw is None:
        raise account_gone(run_id)
    rows = rpc.program_accounts(str(codec.program_id), CLIENT_POINTS_SIZE, (BANKED_OWNER_OFFSET, str(account)))
    return codec.decode_state(raw), banked_from([data for _, data in rows])
