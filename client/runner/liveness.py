"""Is another process already running this wallet in the run? Asked over P2P, before we join.

Why P2P: the chain cannot tell a crashed client (listed, but gone) from a live one, and a restart after a
crash must be allowed. A live client answers QUIC handshakes for its P2P key at the address it registered;
completing a TLS handshake with that key proves its holder is running right now, wherever it runs. We dial
with a throwaway identity, so the answer (accept, or close as not-a-member) comes before any membership
check could hide it.
"""
from __future__ import annotations

import contextlib
import re

from client.p2p.allowlist import StaticMembers, hint_addresses
from client.p2p.gossip import GOSSIP_ALPN
from client.p2p.identity import P2PIdentity
from client.p2p.node import P2PNode, PeerUnreachable
from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.layout_view import rows_matching

PROBE_TIMEOUT_S = 5.0


def registered_hint(state: CoordinatorView, signer: bytes) -> tuple[bytes, list[str]] | None:
    """(p2p key, address hints) of `signer`'s registry entry while it counts as active, else None."""
    for i in rows_matching(view(state).raw, "clients", "signer", int(state.num_clients), signer):  # sliced
        c = state.clients[i]
        if bytes(c.signer) == signer and int(c.active) != 0:
            return bytes(c.p2p), hint_addresses(c.addr_hint)
    return None


def rejected_as_non_member(reason: str) -> bool:
    """Whether the transport's error says the peer closed us out as a non-member. Only the transport's own
    words are read: a "403" in our message could be the dead peer's key or port (a key whose hex begins
    609a331403 made a restarted client after a crash refuse to start, exit 10, in a clean-clone CI run)."""
    return "not a member" in reason or re.search(r"(?<![0-9a-fA-F])403(?![0-9a-fA-F])", reason) is not None


async def p2p_key_alive(key: bytes, addrs: list[str], bind: str = "0.0.0.0:0",
                        timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a process holding `key`'s secret answers at one of `addrs`."""
    if not addrs:
        return False
    host = bind.rsplit(":", 1)[0] or "0.0.0.0"
    node = P2PNode(P2PIdentity.generate(), StaticMembers({key}), bind_addr=f"{host}:0", dial_timeout=timeout)
    await node.start()
    try:
        node.add_peer(key, *addrs)
        conn = await node.connect(key, GOSSIP_ALPN)
        with contextlib.suppress(Exception):
            conn.close(0, b"probe")
        return True
    except PeerUnreachable as e:  # the holder answered and refused our throwaway identity (close code 403)
        return rejected_as_non_member(e.reason)
    except (TimeoutError, OSError):
        return False
    finally:
        await node.close()
