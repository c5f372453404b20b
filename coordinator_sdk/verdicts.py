"""Who verifies whom (issue 25), as the coordinator program computes it (programs/coordinator/verdict_ix.c).

Verifier v checks trainer t's result of round H when

    u64le(sha256(seed(H + 1) u64 LE ‖ v.p2p ‖ t.p2p)[:8]) % (clients_len(H) × 1000) < config.verifiers_per_mille

and v ≠ t: about verifiers_per_mille / 1000 verifiers per trainer and round (so each client recomputes that
many trainers' steps per round: 100 costs ~10% of a round's training; 0 turns verification off), drawn by the
seed of round H + 1, which the chain took from a slot hash after H was trained (so a trainer cannot know whether
it will be checked). One hash per pair (clients_len ≤ 256, so clients_len × 1000 fits any u32/u64 arithmetic):
the program checks a verdict's eligibility with one sha256 syscall, and every client computes the same set.

A verifier posts its verdicts in increasing (height, trainer key) order (`order_key`): the program keeps
only its last one, which is how it refuses a second verdict on the same result."""
from __future__ import annotations

import hashlib

DEFAULT_VERIFIERS_PER_MILLE = 3000  # the model's Config default: about three verifiers per trainer
FAIL, PASS = 0, 1
SETTLED = 0xFFFF  # accuser: its penalty was applied


def _seed_bytes(seed: int | bytes) -> bytes:
    return seed if isinstance(seed, bytes) else int(seed).to_bytes(8, "little", signed=False)


def eligible(seed: int | bytes, verifier: bytes, trainer: bytes, clients_len: int,
             per_mille: int = DEFAULT_VERIFIERS_PER_MILLE) -> bool:
    """Whether the P2P key `verifier` is drawn to check `trainer` (P2P key) in a round of `clients_len` clients,
    `seed` being the random seed of the round after it, at `per_mille` (the run's config.verifiers_per_mille)."""
    if verifier == trainer or clients_len <= 0:
        return False
    digest = hashlib.sha256(_seed_bytes(seed) + bytes(verifier) + bytes(trainer)).digest()
    return int.from_bytes(digest[:8], "little") % (clients_len * 1000) < per_mille


def order_key(height: int, trainer: bytes) -> tuple[int, int]:
    """What the program compares a verifier's verdicts by: (1 + height, LE u64 of the trainer key's first 8 bytes)."""
    return height + 1, int.from_bytes(bytes(trainer)[:8], "little")


def convicted(fails: int, passes: int) -> bool:
    """A trainer's result of one round is convicted by fails ≥ 2 and fails > passes: one verifier alone never
    convicts anybody, and honest recomputations that passed outweigh the same number of accusations."""
    return fails >= 2 and fails > passes


def vindicated(fails: int, passes: int) -> bool:
    return passes >= 2 and passes > fails
