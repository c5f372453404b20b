"""Solana-CLI-compatible keypair files: a JSON array of the 64 secret-key bytes (seed + public key)."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from solders.keypair import Keypair


class KeypairFileError(Exception):
    """A keypair file is missing, unreadable or not a Solana keypair; the message names the file."""


def read_keypair(path: Path) -> Keypair:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeypairFileError(f"{path}: no such keypair file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KeypairFileError(f"{path}: not a JSON keypair file ({e})") from None
    if not (isinstance(raw, list) and len(raw) == 64 and all(isinstance(b, int) and 0 <= b < 256 for b in raw)):
        raise KeypairFileError(f"{path}: expected a JSON array of 64 byte values (Solana CLI keypair format)")
    try:
        kp = Keypair.from_bytes(bytes(raw))
    except Exception as e:  # solders raises its own error types for a mismatched public key
        raise KeypairFileError(f"{path}: invalid keypair bytes ({e})") from None
    if bytes(kp)[32:] != bytes(raw[32:]):
        raise KeypairFileError(f"{path}: the public key does not match the secret key")
    return kp


def write_keypair(path: Path, kp: Keypair, overwrite: bool = False) -> None:
    if path.exists() and not overwrite:
        raise KeypairFileError(f"{path}: already exists (refusing to overwrite a keypair)")
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(list(bytes(kp)), f)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise KeypairFileError(f"{path}: cannot write the keypair ({e.strerror or e})") from None


def load_or_create(path: Path) -> Keypair:
    if path.exists():
        return read_keypair(path)
    kp = Keypair()
    write_keypair(path, kp)
    return kp
