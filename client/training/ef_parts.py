"""The error-feedback state committed as a Merkle tree of DCT blocks, so a verifier fetches a few blocks.

A result's `ef` (format psyche-ef/3) is sha256("psyche-ef/3" ‖ sent ‖ sign-map hash ‖ root), where `root` is
the root of a binary Merkle tree whose leaves are the state's DCT blocks, one per block of every parameter
(layout order, then the blocks in `ChunkPlan.blocks_shape` order): δ on the block's h×w cells (f32, row-major
in the block) followed, from the second step on, by the block's previous sent coefficients Q (int64 indices,
f32 values). Leaves hash as sha256(0x00 ‖ leaf), nodes as sha256(0x01 ‖ left ‖ right), an odd last node is
carried up unchanged. The sign map of δ (a bit "negative" per element, then a bit "non-zero", deflated) is
committed only by runs that train with the look-ahead (p − η·sign(δ) before the forward pass, the overlapped
pipeline): it moves every weight, so a recomputation needs it whole (45 kB on the demo's model), and it is
served as a blob by its hash. A synchronous run commits 32 zero bytes in its place.

A verifier asks the trainer for an *opening* of `ef` at the leaves drawn from a seed the trainer could not
know when it published (`choose_leaves`): the sent flag, the sign-map hash, the root, the drawn leaves and the
multiproof (the sibling hashes the drawn leaves do not determine: ~60 hashes for 8 of ~1,400 leaves, where the
psyche-ef/2 header listed every row hash, 5.7 kB). Every step of DisTrO but the look-ahead works block by block,
so a recomputation from δ and Q known on the drawn blocks only (zero elsewhere) is bit-identical to the full one
on them (bench/verification_bytes.py). For the state after the step the verifier asks for the proof alone and
checks that its own derived leaves hash to that root. A leaf of the wrong size, a proof that does not lead to
the committed root, or a sign map that disagrees with δ on a drawn block is a malformed state.
"""
from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np
import torch

from client.training import native
from client.training.compress import SparseCoeffs
from client.training.dct import from_blocks, to_blocks

# the tree's primitives, re-exported: verify.py and the tests reach them through ef_parts
from client.training.merkle import HashLevel, build_tree, leaf_hash, node_hash, prove, root_of, sha  # noqa: F401

if TYPE_CHECKING:
    from client.training.distro import Distro, ParamLayout

FORMAT = "psyche-ef/3"
OPENING_KEYS = {"sent", "signs", "root", "leaves", "proof"}
NO_SIGNS = bytes(32)
MAX_OPEN = 1 << 16  # leaves one opening request may name


def commitment(sent: bool, signs_hash: bytes, root: bytes) -> bytes:
    return sha(FORMAT.encode() + bytes([sent]) + signs_hash + root)


@dataclass(frozen=True)
class StateParts:
    """One state, as the trainer keeps and serves it: `ef` commits to all of it."""

    sent: bool
    signs: bytes | None  # the sign map (runs with the look-ahead), served as a blob by its hash
    leaves: Sequence[bytes] | Sequence[memoryview]  # `Leaves` of the trainer's arrays (no copy); bytes once opened
    levels: Sequence[Sequence[bytes]]  # the tree, leaves' hashes first; the last level holds the root

    @property
    def signs_hash(self) -> bytes:
        return NO_SIGNS if self.signs is None else sha(self.signs)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    @property
    def ef(self) -> bytes:
        return commitment(self.sent, self.signs_hash, self.root)

    def hashed(self) -> list[tuple[bytes, bytes]]:
        """(blob, its sha256) for the blob store: the sign map; the leaves are served by `open`."""
        return [] if self.signs is None else [(self.signs, self.signs_hash)]

    def open(self, indices: list[int], with_leaves: bool = True) -> bytes | None:
        """The opening of this state at `indices` (msgpack), or None for an index out of range."""
        idx = sorted(set(indices))
        if not idx or idx[0] < 0 or idx[-1] >= len(self.leaves):
            return None
        return msgpack.packb({"sent": self.sent, "signs": self.signs_hash, "root": self.root,
                              "leaves": [bytes(self.leaves[i]) for i in idx] if with_leaves else [],
                              "proof": prove(self.levels, idx)}, use_bin_type=True)


@dataclass(frozen=True)
class Opening:
    """What a verifier holds of a trainer's state: the commitment's parts and some of its leaves."""

    sent: bool
    signs_hash: bytes
    root: bytes
    leaves: dict[int, bytes]
    proof: list[bytes]
    signs: bytes | None = None  # the sign map, once fetched (runs with the look-ahead)

    @staticmethod
    def whole(parts: StateParts) -> Opening:
        """Every leaf: a full recomputation (tools, the bench's cheats)."""
        return Opening(parts.sent, parts.signs_hash, parts.root, dict(enumerate(parts.leaves)), [], parts.signs)


def leaf_index(layout: dict[str, ParamLayout]) -> tuple[tuple[str, int], ...]:
    """(parameter, block) of every leaf, in tree order (built once per layout shape: a check asks ~10 times)."""
    return _leaf_index(tuple((n, lay.plan.num_blocks) for n, lay in layout.items()))


@functools.lru_cache(maxsize=8)
def _leaf_index(blocks: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    return tuple((n, b) for n, count in blocks for b in range(count))


def leaf_size(layout: dict[str, ParamLayout], name: str, sent: bool) -> int:
    lay = layout[name]
    return 4 * lay.plan.totalk + (12 * lay.k if sent else 0)


def opening_limit(layout: dict[str, ParamLayout], count: int, with_leaves: bool = True) -> int:
    """An upper bound on the bytes of an opening at `count` leaves (msgpack framing included)."""
    total = len(leaf_index(layout))
    depth = max(1, (total - 1).bit_length())
    biggest = max(leaf_size(layout, n, True) for n in layout)
    return 256 + (count * (biggest + 8) if with_leaves else 0) + min(count * depth, total) * 35


def _bitmap_bytes(layout: dict[str, ParamLayout]) -> int:
    return (sum(lay.plan.num_blocks * lay.plan.totalk for lay in layout.values()) + 7) // 8


def signs_size(layout: dict[str, ParamLayout]) -> int:
    """An upper bound on a sign map: the negative bits, then the non-zero bits deflated (zlib's worst case)."""
    n = _bitmap_bytes(layout)
    return 2 * n + n // 100 + 64


def sign_map(delta: dict[str, torch.Tensor]) -> bytes:
    flat = torch.cat([d.detach().reshape(-1).cpu() for d in delta.values()]).numpy()
    # the non-zero bits are nearly all 1 (a zero δ: an embedding row of a token never seen) and deflate from
    # 45 kB to ~0.3 kB for 0.03 ms; the negative bits are noise and stay raw
    return np.packbits(flat < 0).tobytes() + zlib.compress(np.packbits(flat != 0).tobytes(), 1)


def _blocks(x: torch.Tensor, lay: ParamLayout) -> torch.Tensor:
    """`x` (parameter-shaped) as `[num_blocks, h·w]`, each block's cells row-major."""
    return to_blocks(x.detach().cpu().float(), lay.plan).reshape(lay.plan.num_blocks, lay.plan.totalk)


def _unblock(blocks: torch.Tensor, lay: ParamLayout) -> torch.Tensor:
    return from_blocks(blocks.reshape(*lay.plan.blocks_shape, lay.plan.h, lay.plan.w), lay.plan)


def _param_rows(d: Distro, name: str) -> np.ndarray:
    """Every leaf of parameter `name` as rows of one u8 array, each row 0x00 ‖ leaf (the leaf-hash prefix in
    place, so a row hashes without a copy): one numpy pass instead of three byte strings per block."""
    lay = d.layout[name]
    parts = [np.zeros((lay.plan.num_blocks, 1), np.uint8),
             _blocks(d.delta[name], lay).numpy().astype("<f4", copy=False).view(np.uint8)]
    parts += [x.view(np.uint8) for x in _sent_arrays(d, name)]
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def _sent_arrays(d: Distro, name: str) -> tuple[np.ndarray, ...]:
    """The blocks' previous sent indices (<i8) and values (<f4) of parameter `name`, `[blocks, k]` contiguous
    (the shared selection's indices can be a broadcast view), or nothing before the first step."""
    if d.sent is None:
        return ()
    q, blocks = d.sent[name], d.layout[name].plan.num_blocks
    return tuple(np.ascontiguousarray(x.cpu().numpy().astype(dtype).reshape(blocks, -1))
                 for x, dtype in ((q.idx, "<i8"), (q.val, "<f4")))


def _param_leaves(d: Distro, name: str, which: list[int] | None) -> list[bytes]:
    rows = _param_rows(d, name)
    return [rows[b, 1:].tobytes() for b in (range(rows.shape[0]) if which is None else which)]


def leaves_of(d: Distro, indices: list[int]) -> dict[int, bytes]:
    """The given leaves of the state, without the rest (a verifier's derived next state)."""
    index, by_param = leaf_index(d.layout), {}
    for i in indices:
        by_param.setdefault(index[i][0], []).append(i)
    out = {}
    for n, ids in by_param.items():
        out.update(zip(ids, _param_leaves(d, n, [index[i][1] for i in ids]), strict=True))
    return out


class Leaves(Sequence):
    """The leaves of a trainer's own state, read from its per-parameter rows (0x00 ‖ leaf) on demand: the
    commitment hashes each row in place, and only an opening copies a few leaves out."""

    def __init__(self, rows: dict[str, np.ndarray], index: tuple[tuple[str, int], ...]) -> None:
        self._rows, self._index = rows, index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> memoryview:  # type: ignore[override]
        if not 0 <= i < len(self._index):
            raise IndexError(f"leaf {i} out of range")
        name, block = self._index[i]
        return memoryview(self._rows[name][block, 1:])


def _native_rows(lib: Any, d: Distro, name: str) -> tuple[np.ndarray, bytes]:
    """`_param_rows` and its rows' hashes in one C pass (client.training.native): the same bytes."""
    lay = d.layout[name]
    delta = np.ascontiguousarray(d.delta[name].detach().cpu().float().reshape(-1, lay.plan.matrix_shape[-1]).numpy())
    idx, val = _sent_arrays(d, name) or (None, None)  # little-endian: the C path only loads on such machines
    return native.hash_blocks(lib, delta, lay.plan.h, lay.plan.w, idx, val)


def split(d: Distro, signs: bool = True, use_native: bool = True) -> StateParts:
    """The trainer's state as a tree (`Distro.generate` commits to it before each step); `signs`: whether
    the run trains with the look-ahead, whose sign map a verifier then needs. The leaves are gathered and
    hashed in C when the library is built (`client.training.native`: ~1.5 ms on the demo's model, where Python
    takes ~2.5 ms), else in Python (`use_native=False`: always; the reference): the same root."""
    lib = native.library() if use_native else None
    rows: dict[str, np.ndarray] = {}
    levels: Sequence[Sequence[bytes]]
    if lib is not None:
        flat = []
        for n in d.layout:
            rows[n], hashes = _native_rows(lib, d, n)
            flat.append(hashes)
        levels = [HashLevel(x) for x in native.build_levels(lib, b"".join(flat))]
    else:
        leaf_hashes: list[bytes] = []
        for n in d.layout:  # each row is 0x00 ‖ leaf: leaf_hash without a copy
            r = rows[n] = _param_rows(d, n)
            view, width = memoryview(r.reshape(-1)), r.shape[1]
            leaf_hashes += [hashlib.sha256(view[off:off + width]).digest() for off in range(0, r.size, width)]
        levels = build_tree(leaf_hashes)
    return StateParts(d.sent is not None, sign_map(d.delta) if signs else None, Leaves(rows, leaf_index(d.layout)),
                      levels)


def parse_opening(blob: bytes, layout: dict[str, ParamLayout], ef: bytes, indices: list[int],
                  with_leaves: bool = True) -> Opening:
    """An opening of `ef` at `indices`, checked: it must hash to `ef`, hold leaves of the right sizes and a
    proof that leads to its root. Raises ValueError on anything else."""
    try:
        env = msgpack.unpackb(blob, raw=False)
    except Exception as e:  # msgpack raises several unrelated exception types
        raise ValueError(f"state opening is not msgpack: {e}") from None
    if not isinstance(env, dict) or set(env) != OPENING_KEYS:
        raise ValueError("state opening has the wrong envelope")
    sent, signs_hash, root, leaves, proof = (env[k] for k in ("sent", "signs", "root", "leaves", "proof"))
    if not isinstance(sent, bool) or not isinstance(signs_hash, bytes) or len(signs_hash) != 32 \
            or not isinstance(root, bytes) or len(root) != 32:
        raise ValueError("state opening: sent, signs or root malformed")
    if commitment(sent, signs_hash, root) != ef:
        raise ValueError("state opening does not match the result's ef commitment")
    idx = sorted(set(indices))
    if not isinstance(leaves, list) or len(leaves) != (len(idx) if with_leaves else 0) \
            or not isinstance(proof, list) or any(not isinstance(p, bytes) or len(p) != 32 for p in proof):
        raise ValueError("state opening: wrong number of leaves or a malformed proof")
    index = leaf_index(layout)
    got = dict(zip(idx, leaves, strict=True)) if with_leaves else {}
    for i, leaf in got.items():
        if not isinstance(leaf, bytes) or len(leaf) != leaf_size(layout, index[i][0], sent):
            raise ValueError(f"leaf {i} ({index[i][0]}) has the wrong size")
    if with_leaves and root_of({i: leaf_hash(x) for i, x in got.items()}, len(index), proof) != root:
        raise ValueError("state opening: the leaves and proof do not lead to the committed root")
    return Opening(sent, signs_hash, root, got, proof)


def choose_leaves(seed: bytes, verifier: bytes, trainer: bytes, total: int, count: int) -> list[int]:
    """`count` distinct leaves out of `total`, from a seed drawn after the trainer published: the leaf
    sha256(seed ‖ verifier ‖ trainer ‖ counter) mod total names, for counter 0, 1, ... until `count` differ (a
    few hashes for a few leaves, where ranking every leaf by its hash took ~1.5 ms of a check on the demo's
    1,448; the modulo's bias is below total / 2^64)."""
    if count >= total:
        return list(range(total))
    prefix, out, ctr = seed + verifier + trainer, set(), 0
    while len(out) < count:
        out.add(int.from_bytes(sha(prefix + ctr.to_bytes(8, "little"))[:8], "little") % total)
        ctr += 1
    return sorted(out)


def load_partial(d: Distro, opening: Opening, lookahead: bool) -> dict[str, torch.Tensor] | None:
    """Load δ and Q on the opened leaves (zero elsewhere) into `d`; with the look-ahead, return sign(δ) of every
    parameter from the sign map (which must be in the opening). Raises ValueError on a piece that does not fit
    or disagrees."""
    layout, index = d.layout, leaf_index(d.layout)
    out = _signs(layout, d.delta, opening) if lookahead else None
    for x in d.delta.values():
        x.zero_()
    d.sent = _zero_sent(d) if opening.sent else None
    touched = {index[i][0] for i in opening.leaves}  # δ stays zero on the other parameters
    blocks = {n: _blocks(d.delta[n], layout[n]) for n in touched}
    sign_blocks = None if out is None else {n: _blocks(out[n], layout[n]) for n in touched}
    for i, leaf in opening.leaves.items():
        n, b = index[i]
        lay = layout[n]
        if len(leaf) != leaf_size(layout, n, opening.sent):
            raise ValueError(f"leaf {i} ({n}) has the wrong size")
        cells = torch.from_numpy(np.frombuffer(leaf[:4 * lay.plan.totalk], "<f4").copy())
        blocks[n][b] = cells
        if sign_blocks is not None and not torch.equal(torch.sign(cells), sign_blocks[n][b]):
            raise ValueError(f"sign map disagrees with δ on leaf {i} ({n})")
        if d.sent is not None:
            q, k, off = d.sent[n], lay.k, 4 * lay.plan.totalk
            idx = torch.from_numpy(np.frombuffer(leaf[off:off + 8 * k], "<i8").copy())
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= lay.plan.totalk):
                raise ValueError(f"leaf {i} ({n}): sent index out of range")
            q.idx.view(lay.plan.num_blocks, k)[b] = idx
            q.val.view(lay.plan.num_blocks, k)[b] = torch.from_numpy(np.frombuffer(leaf[off + 8 * k:], "<f4").copy())
    for n in touched:
        x = d.delta[n]
        x.copy_(_unblock(blocks[n], layout[n]).to(x.device))
    return out


def _signs(layout: dict[str, ParamLayout], delta: dict[str, torch.Tensor], opening: Opening) -> dict[str, torch.Tensor]:
    signs, n = opening.signs, _bitmap_bytes(layout)
    if signs is None or opening.signs_hash == NO_SIGNS:
        raise ValueError("the state commits to no sign map, but the run trains with the look-ahead")
    if not n < len(signs) <= signs_size(layout) or sha(signs) != opening.signs_hash:
        raise ValueError("sign map has the wrong size or hash")
    total = sum(x.numel() for x in delta.values())
    inflate = zlib.decompressobj()
    try:
        nz_bytes = inflate.decompress(signs[n:], n + 1)
    except zlib.error as e:
        raise ValueError(f"sign map: non-zero bits do not inflate: {e}") from None
    if len(nz_bytes) != n or inflate.unconsumed_tail or inflate.unused_data or not inflate.eof:
        raise ValueError("sign map: the non-zero bits have the wrong size")
    neg = np.unpackbits(np.frombuffer(signs[:n], np.uint8), count=total).astype(bool)
    nz = np.unpackbits(np.frombuffer(nz_bytes, np.uint8), count=total).astype(bool)
    if (neg & ~nz).any():
        raise ValueError("sign map marks a zero as negative")
    flat_sign = torch.from_numpy(nz.astype(np.float32) - 2.0 * neg.astype(np.float32))  # −1, 0 or +1
    out, off = {}, 0
    for name, x in delta.items():
        out[name] = flat_sign[off:off + x.numel()].reshape(x.shape)
        off += x.numel()
    return out


def _zero_sent(d: Distro) -> dict[str, SparseCoeffs]:
    """Q-shaped zeros for every parameter (the shape a result of this layout has)."""
    return {n: SparseCoeffs(torch.zeros((*lay.plan.blocks_shape, lay.k), dtype=torch.int64),
                            torch.zeros((*lay.plan.blocks_shape, lay.k), dtype=torch.float32))
            for n, lay in d.layout.items()}
