"""Peer-to-peer layer over iroh QUIC: node identity and membership, signed gossip, blobs, checkpoint sharing.

The PyPI iroh bindings expose only endpoints, connections and streams, so the protocols here (gossip,
blob transfer) are our own, each on its own ALPN. Importing this package applies `ffi_patch`.
"""
from client.p2p import ffi_patch

ffi_patch.apply()
