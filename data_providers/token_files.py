"""Token file formats: raw little-endian u16/u32 (`.bin`, `.ds`) and `.npy` with its header parsed.

Psyche treats `.npy` as raw bytes (header and all); we parse the header instead, so a file's dtype,
shape and data offset are known and a wrong dtype or a Fortran-ordered array is refused rather than
silently read as tokens.
"""
from __future__ import annotations

import ast
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_providers.types import DataFileError

DATA_EXTENSIONS = (".bin", ".ds", ".npy")
TOKEN_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}
NPY_MAGIC = b"\x93NUMPY"
NPY_PREFIX_LEN = 10  # magic(6) + version(2) + header length u16 (v1); v2/v3 use a u32 -> 12


@dataclass(frozen=True)
class TokenFileInfo:
    """Where a file's tokens start (bytes) and how many there are; shared by local and remote readers."""

    name: str
    token_size: int
    data_offset: int
    num_tokens: int

    @property
    def dtype(self) -> np.dtype:
        return TOKEN_DTYPES[self.token_size]


def check_token_size(token_size: int, where: str) -> int:
    if token_size not in TOKEN_DTYPES:
        raise DataFileError(f"{where}: token size must be 2 (u16) or 4 (u32) bytes, got {token_size!r}")
    return token_size


def is_data_file(name: str) -> bool:
    return name.endswith(DATA_EXTENSIONS)


def npy_header_length(prefix: bytes, where: str) -> int:
    """Total header bytes (prefix + dict) from the first 12 bytes of a .npy file."""
    if len(prefix) < 12 or not prefix.startswith(NPY_MAGIC):
        raise DataFileError(f"{where}: not a .npy file (missing \\x93NUMPY magic or truncated header)")
    major = prefix[6]
    if major == 1:
        return NPY_PREFIX_LEN + struct.unpack("<H", prefix[8:10])[0]
    if major in (2, 3):
        return 12 + struct.unpack("<I", prefix[8:12])[0]
    raise DataFileError(f"{where}: unsupported .npy format version {major}.{prefix[7]}")


def parse_npy_header(header: bytes, file_size: int, where: str,
                     expected_token_size: int | None = None) -> TokenFileInfo:
    """Parse a complete .npy header (as sized by `npy_header_length`) and validate it as a token file."""
    total = npy_header_length(header[:12], where)
    if len(header) < total:
        raise DataFileError(f"{where}: .npy header truncated ({len(header)} of {total} bytes)")
    start = NPY_PREFIX_LEN if header[6] == 1 else 12
    try:
        meta = ast.literal_eval(header[start:total].decode("latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError) as e:
        raise DataFileError(f"{where}: unreadable .npy header dict: {e}") from e
    if not isinstance(meta, dict) or not {"descr", "fortran_order", "shape"} <= meta.keys():
        raise DataFileError(f"{where}: .npy header lacks descr/fortran_order/shape: {meta!r}")
    if meta["fortran_order"]:
        raise DataFileError(f"{where}: Fortran-ordered .npy arrays are not supported as token files")
    try:
        dtype = np.dtype(meta["descr"])
    except TypeError as e:
        raise DataFileError(f"{where}: bad .npy dtype {meta['descr']!r}") from e
    if dtype not in (TOKEN_DTYPES[2], TOKEN_DTYPES[4]):
        raise DataFileError(f"{where}: .npy dtype {dtype.str} is not a token dtype (need <u2 or <u4)")
    shape = meta["shape"]
    if not isinstance(shape, tuple) or len(shape) != 1 or not isinstance(shape[0], int):
        raise DataFileError(f"{where}: token .npy must be 1-D, header shape is {shape!r}")
    token_size = dtype.itemsize
    if expected_token_size is not None and expected_token_size != token_size:
        raise DataFileError(f"{where}: wrong token size: .npy dtype {dtype.str} is {token_size} bytes,"
                            f" expected {expected_token_size}")
    need = total + shape[0] * token_size
    if file_size < need:
        raise DataFileError(f"{where}: truncated: header promises {shape[0]} tokens ({need} bytes),"
                            f" file has {file_size} bytes")
    if file_size > need:
        raise DataFileError(f"{where}: {file_size - need} unexpected trailing bytes after {shape[0]} tokens")
    return TokenFileInfo(where, token_size, total, shape[0])


def raw_file_info(name: str, file_size: int, token_size: int | None) -> TokenFileInfo:
    """A raw token file has no header: its size must be a whole number of tokens."""
    if token_size is None:
        raise DataFileError(f"{name}: raw token file needs a token size (2 or 4); pass one or add a manifest")
    check_token_size(token_size, name)
    if file_size % token_size:
        raise DataFileError(f"{name}: truncated or wrong token size: {file_size} bytes is not a multiple"
                            f" of token size {token_size}")
    return TokenFileInfo(name, token_size, 0, file_size // token_size)


def local_file_info(path: Path, token_size: int | None) -> TokenFileInfo:
    size = path.stat().st_size
    if path.suffix == ".npy":
        with path.open("rb") as f:
            prefix = f.read(12)
            total = npy_header_length(prefix, str(path))
            header = prefix + f.read(max(0, total - 12))
        return parse_npy_header(header, size, str(path), token_size)
    return raw_file_info(str(path), size, token_size)


def write_token_file(path: Path, tokens: np.ndarray, token_size: int) -> None:
    """Write tokens as `.npy` (self-describing) or raw LE (`.bin`/`.ds`), chosen by the suffix."""
    arr = np.ascontiguousarray(tokens, dtype=TOKEN_DTYPES[check_token_size(token_size, str(path))])
    if path.suffix == ".npy":
        with path.open("wb") as f:
            np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=False)
    elif path.suffix in (".bin", ".ds"):
        path.write_bytes(arr.tobytes())
    else:
        raise DataFileError(f"{path}: unknown token file extension (use one of {', '.join(DATA_EXTENSIONS)})")
