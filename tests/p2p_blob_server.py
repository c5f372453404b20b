"""A blob-serving peer in its own process, so tests can SIGKILL it mid-transfer (hivemind-style faults).

    python -m tests.p2p_blob_server SEED_HEX MEMBER_HEX,... SIZE RNG_SEED
Prints `READY <address> <sha256 hex>` once serving, then serves until killed.
"""
from __future__ import annotations

import asyncio
import sys

import numpy as np

import client.p2p  # noqa: F401
from client.p2p.allowlist import StaticMembers
from client.p2p.blobs import BlobService
from client.p2p.identity import P2PIdentity
from client.p2p.node import P2PNode


def blob_bytes(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


async def main(seed_hex: str, members_hex: str, size: int, rng_seed: int) -> None:
    members = StaticMembers({bytes.fromhex(k) for k in members_hex.split(",")})
    node = P2PNode(P2PIdentity(bytes.fromhex(seed_hex)), members)
    blobs = BlobService(node)
    h = blobs.store.put(blob_bytes(size, rng_seed))
    await node.start()
    print(f"READY {node.address} {h.hex()}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
