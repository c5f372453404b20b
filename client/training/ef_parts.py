"""The error-feedback state committed in parts, so a verifier fetches a few block-rows, not the whole state.

A result's `ef` is the sha256 of a small header that lists the sha256 of
  * every block-row of the state: for each parameter (layout order) and each strip of h rows of its matrix
    view (its DCT blocks side by side, contiguous in memory), δ on the strip (f32) followed, from the second
    step on, by the strip's blocks' previous sent coefficients Q (int64 indices, f32 values);
  * the sign map of δ (a bit "negative" per element, then a bit "non-zero", over all parameters): the
    look-ahead (p − η·sign(δ) before the forward pass) moves every weight by it, so a recomputation needs it
    whole; 45 kB on the demo's model (the non-zero bits deflated), where the state is 1.46 MB.
Each piece is a blob in the trainer's store, fetched by its hash. A verifier fetches the header, the sign map
and the block-rows chosen by a seed the trainer could not know when it published (`choose_rows`), and
recomputes the step from δ and Q known on those rows only (zero elsewhere): every step of DisTrO but the
look-ahead works block by block, so the rows come out bit-identical to a full recomputation (measured:
bench/verification_bytes.py, 4,218 block-rows, 0 differ). A row whose bytes do not hash to the header's
entry, a piece of the wrong size, or a sign map that disagrees with δ on a fetched row is a malformed state.
"""
from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgpack
import numpy as np
import torch

from client.training.compress import SparseCoeffs

if TYPE_CHECKING:
    from client.training.distro import Distro, ParamLayout

FORMAT = "psyche-ef/2"
HEADER_KEYS = {"format", "sent", "signs", "rows"}


@dataclass(frozen=True)
class StateParts:
    """One state, as the trainer stores and serves it: `ef` = sha256(header)."""

    header: bytes
    signs: bytes
    rows: list[bytes]
    signs_hash: bytes
    row_hashes: list[bytes]

    @property
    def ef(self) -> bytes:
        return sha(self.header)

    def blobs(self) -> list[bytes]:
        return [self.header, self.signs, *self.rows]

    def hashed(self) -> list[tuple[bytes, bytes]]:
        """(blob, its sha256) for the store: the hashes computed once, by `split`."""
        return [(self.header, self.ef), (self.signs, self.signs_hash), *zip(self.rows, self.row_hashes, strict=True)]


@dataclass(frozen=True)
class Header:
    sent: bool  # whether the state holds Q (not before the first step)
    signs: bytes
    rows: list[bytes]


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def row_counts(layout: dict[str, ParamLayout]) -> dict[str, int]:
    """Block-rows per parameter: the matrix view's leading dims times m/h."""
    return {n: lay.plan.num_blocks // lay.plan.blocks_shape[-1] for n, lay in layout.items()}


def row_index(layout: dict[str, ParamLayout]) -> list[tuple[str, int]]:
    return [(n, r) for n, count in row_counts(layout).items() for r in range(count)]


def row_size(layout: dict[str, ParamLayout], name: str, sent: bool, counts: dict[str, int] | None = None) -> int:
    """Bytes of one block-row of parameter `name` (`counts`: `row_counts(layout)`, when the caller has it)."""
    lay = layout[name]
    cells = lay.plan.num_blocks * lay.plan.totalk // (counts or row_counts(layout))[name]
    return 4 * cells + (12 * lay.plan.blocks_shape[-1] * lay.k if sent else 0)


def _bitmap_bytes(layout: dict[str, ParamLayout]) -> int:
    return (sum(lay.plan.num_blocks * lay.plan.totalk for lay in layout.values()) + 7) // 8


def signs_size(layout: dict[str, ParamLayout]) -> int:
    """An upper bound on a sign map: the negative bits, then the non-zero bits deflated (zlib's worst case)."""
    n = _bitmap_bytes(layout)
    return 2 * n + n // 100 + 64


def header_limit(layout: dict[str, ParamLayout]) -> int:
    return 256 + 34 * len(row_index(layout))


def sign_map(delta: dict[str, torch.Tensor]) -> bytes:
    flat = torch.cat([d.detach().reshape(-1).cpu() for d in delta.values()]).numpy()
    # the non-zero bits are nearly all 1 (a zero δ: an embedding row of a token never seen) and deflate from
    # 45 kB to ~0.3 kB for 0.03 ms; the negative bits are noise and stay raw
    return np.packbits(flat < 0).tobytes() + zlib.compress(np.packbits(flat != 0).tobytes(), 1)


def rows_of(d: Distro, indices: list[int]) -> dict[int, bytes]:
    """The given block-rows of the state as `split` lays them out, without the rest (a verifier's derived
    next state: it knows only these rows, and hashing all 165 of them cost ~1.5 ms per check)."""
    index, counts = row_index(d.layout), row_counts(d.layout)
    out = {}
    for i in indices:
        n, r = index[i]
        row = d.delta[n].detach().cpu().reshape(counts[n], -1)[r].contiguous().numpy().astype("<f4").tobytes()
        if d.sent is not None:
            q = d.sent[n]
            row += q.idx.cpu().reshape(counts[n], -1)[r].numpy().astype("<i8").tobytes()
            row += q.val.cpu().reshape(counts[n], -1)[r].numpy().astype("<f4").tobytes()
        out[i] = row
    return out


def split(d: Distro) -> StateParts:
    """The trainer's state in parts (`Distro.generate` commits to it before each step)."""
    counts = row_counts(d.layout)
    rows: list[bytes] = []
    for n, x in d.delta.items():
        count = counts[n]
        dv = memoryview(x.detach().cpu().contiguous().numpy().astype("<f4", copy=False).tobytes())
        step = len(dv) // count
        if d.sent is None:
            rows += [bytes(dv[r * step:(r + 1) * step]) for r in range(count)]
            continue
        idx = d.sent[n].idx.cpu().numpy().astype("<i8").reshape(count, -1)
        val = d.sent[n].val.cpu().numpy().astype("<f4").reshape(count, -1)
        rows += [b"".join((dv[r * step:(r + 1) * step], idx[r].tobytes(), val[r].tobytes())) for r in range(count)]
    signs = sign_map(d.delta)
    signs_hash, row_hashes = sha(signs), [sha(r) for r in rows]
    header = msgpack.packb({"format": FORMAT, "sent": d.sent is not None, "signs": signs_hash,
                            "rows": row_hashes}, use_bin_type=True)
    return StateParts(header, signs, rows, signs_hash, row_hashes)


def parse_header(blob: bytes, layout: dict[str, ParamLayout]) -> Header:
    """Raises ValueError on a header that does not fit this model."""
    if len(blob) > header_limit(layout):
        raise ValueError(f"state header of {len(blob)} bytes, over {header_limit(layout)}")
    try:
        env = msgpack.unpackb(blob, raw=False)
    except Exception as e:  # msgpack raises several unrelated exception types
        raise ValueError(f"state header is not msgpack: {e}") from None
    if not isinstance(env, dict) or set(env) != HEADER_KEYS or env["format"] != FORMAT:
        raise ValueError("state header has the wrong envelope")
    rows, total = env["rows"], len(row_index(layout))
    if not isinstance(env["sent"], bool) or not isinstance(env["signs"], bytes) or len(env["signs"]) != 32:
        raise ValueError("state header: sent or signs malformed")
    if not isinstance(rows, list) or len(rows) != total or any(not isinstance(h, bytes) or len(h) != 32 for h in rows):
        raise ValueError(f"state header lists {len(rows) if isinstance(rows, list) else '?'} rows, expected {total}")
    return Header(env["sent"], env["signs"], rows)


def choose_rows(seed: bytes, verifier: bytes, trainer: bytes, total: int, count: int) -> list[int]:
    """`count` distinct block-rows out of `total`, from a seed drawn after the trainer published."""
    ranked = sorted(range(total), key=lambda i: sha(seed + verifier + trainer + i.to_bytes(4, "little")))
    return sorted(ranked[:min(count, total)])


def load_partial(d: Distro, header: Header, signs: bytes, rows: dict[int, bytes]) -> dict[str, torch.Tensor]:
    """Load δ and Q on the given block-rows (zero elsewhere) into `d`; return sign(δ) of every parameter from
    the sign map, for the look-ahead. Raises ValueError on a piece that does not fit or disagrees."""
    layout, index, counts = d.layout, row_index(d.layout), row_counts(d.layout)
    n = _bitmap_bytes(layout)
    if not n < len(signs) <= signs_size(layout) or sha(signs) != header.signs:
        raise ValueError("sign map has the wrong size or hash")
    total = sum(x.numel() for x in d.delta.values())
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
    for n, x in d.delta.items():
        out[n] = flat_sign[off:off + x.numel()].reshape(x.shape)
        off += x.numel()
        x.zero_()
    d.sent = _zero_sent(d) if header.sent else None
    for i, blob in rows.items():
        n, r = index[i]
        if sha(blob) != header.rows[i] or len(blob) != row_size(layout, n, header.sent, counts):
            raise ValueError(f"block-row {i} ({n}) has the wrong hash or size")
        view = d.delta[n].view(counts[n], -1)
        cells = view.shape[1]
        view[r] = torch.from_numpy(np.frombuffer(blob[:4 * cells], "<f4").copy())
        if not torch.equal(torch.sign(view[r]), out[n].view(counts[n], -1)[r]):
            raise ValueError(f"sign map disagrees with δ on block-row {i} ({n})")
        if d.sent is not None:
            q, lay = d.sent[n], layout[n]
            k = q.idx.reshape(counts[n], -1).shape[1]
            idx = torch.from_numpy(np.frombuffer(blob[4 * cells:4 * cells + 8 * k], "<i8").copy())
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= lay.plan.totalk):
                raise ValueError(f"block-row {i} ({n}): sent index out of range")
            q.idx.view(counts[n], -1)[r] = idx
            q.val.view(counts[n], -1)[r] = torch.from_numpy(np.frombuffer(blob[4 * cells + 8 * k:], "<f4").copy())
    return out


def _zero_sent(d: Distro) -> dict[str, SparseCoeffs]:
    """Q-shaped zeros for every parameter (the shape a result of this layout has)."""
    return {n: SparseCoeffs(torch.zeros((*lay.plan.blocks_shape, lay.k), dtype=torch.int64),
                            torch.zeros((*lay.plan.blocks_shape, lay.k), dtype=torch.float32))
            for n, lay in d.layout.items()}
