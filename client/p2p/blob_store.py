"""Content-addressed blobs in memory: the sha256 of the bytes is the name, each tagged with a step for GC."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass
class _Entry:
    data: bytes
    step: int
    pinned: bool


class BlobStore:
    def __init__(self) -> None:
        self._blobs: dict[bytes, _Entry] = {}

    def put(self, data: bytes, step: int = 0, pinned: bool = False, known: bytes | None = None) -> bytes:
        """Store and return the hash; re-putting known bytes keeps the newer step and any pin. `known`: the
        sha256 of `data` the caller computed itself from these very bytes (its own error-feedback state, hashed
        once to commit to it: hashing 1.5 MB again each round cost ~0.7 ms); never a hash a peer sent."""
        h = hashlib.sha256(data).digest() if known is None else known
        old = self._blobs.get(h)
        if old is not None:
            old.step, old.pinned = max(old.step, step), old.pinned or pinned
        else:
            self._blobs[h] = _Entry(bytes(data), step, pinned)
        return h

    def unpin(self, h: bytes) -> None:
        """Let GC take a blob again (e.g. a checkpoint that a newer one replaced)."""
        e = self._blobs.get(h)
        if e is not None:
            e.pinned = False

    def get(self, h: bytes) -> bytes | None:
        e = self._blobs.get(h)
        return e.data if e else None

    def __contains__(self, h: bytes) -> bool:
        return h in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    @property
    def total_bytes(self) -> int:
        return sum(len(e.data) for e in self._blobs.values())

    def gc(self, current_step: int, keep_steps: int) -> int:
        """Drop unpinned blobs older than `keep_steps` steps; returns how many went."""
        old = [h for h, e in self._blobs.items() if not e.pinned and e.step < current_step - keep_steps]
        for h in old:
            del self._blobs[h]
        return len(old)
