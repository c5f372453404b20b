"""A client's P2P identity: one ed25519 seed that is both its iroh endpoint key and its gossip signing key.

The public key is what the client registers on chain at `join_run` (`p2p`), so a peer's QUIC identity
(proven by the TLS handshake) and the signer of its gossip are the same key the coordinator lists.
"""
from __future__ import annotations

import os
from pathlib import Path

import iroh
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from coordinator_sdk.keypair_file import read_keypair


class IdentityError(ValueError):
    """A seed or key file that cannot serve as a P2P identity."""


class P2PIdentity:
    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise IdentityError(f"a P2P identity needs a 32-byte ed25519 seed, got {len(seed)} bytes")
        self._seed = seed
        self.signing_key = SigningKey(seed)
        self.public = bytes(self.signing_key.verify_key)
        iroh_public = iroh.SecretKey.from_bytes(seed).public().to_bytes()
        if iroh_public != self.public:  # both are RFC 8032 ed25519; a mismatch means a broken build
            raise IdentityError("iroh and pynacl derive different public keys from the same seed")

    @classmethod
    def generate(cls) -> P2PIdentity:
        return cls(os.urandom(32))

    @classmethod
    def from_keypair_file(cls, path: str | Path) -> P2PIdentity:
        """A Solana-style keypair JSON (64 numbers: seed then public key), e.g. from `psyche keygen`."""
        return cls(bytes(read_keypair(Path(path)))[:32])

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def short(self) -> str:
        return self.public.hex()[:10]

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature


def verify_signature(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        VerifyKey(public).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True
