"""Tokenize text into token-file shards plus a manifest (`psyche data prepare`)."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from data_providers.manifest import Manifest, ManifestFile, sha256_file
from data_providers.token_files import DATA_EXTENSIONS, is_data_file, write_token_file
from data_providers.tokenizer import Tokenizer, token_size_for
from data_providers.types import DataFileError

DEFAULT_SHARD_TOKENS = 1 << 24
MIN_SHARD_TOKENS = 1 << 10  # smaller shards only multiply files and per-file overhead
MAX_SHARD_TOKENS = 1 << 30  # a shard is built in memory: 4 GiB of u32 tokens is already too much


def text_file_documents(paths: Iterable[Path]) -> Iterator[tuple[str, str]]:
    """Each input file is one document; a file that is not UTF-8 text is named in the error."""
    for path in paths:
        try:
            yield str(path), path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise DataFileError(f"{path}: input file not found") from e
        except UnicodeDecodeError as e:
            raise DataFileError(f"{path}: not UTF-8 text (byte {e.start}): {e.reason}") from e


def prepare_dataset(documents: Iterable[tuple[str, str]], out_dir: Path, tokenizer: Tokenizer,
                    seq_len: int | None = None, shard_tokens: int = DEFAULT_SHARD_TOKENS,
                    suffix: str = ".npy", progress: Callable[[int], None] | None = None) -> Manifest:
    """Concatenate documents (EOS between them when the tokenizer has one), cut into shards, write them.

    `progress` is called with the number of characters of each document once it is tokenized.
    """
    if suffix not in DATA_EXTENSIONS:
        raise ValueError(f"suffix must be one of {DATA_EXTENSIONS}, got {suffix!r}")
    if shard_tokens < 1 or (seq_len is not None and seq_len < 1):
        raise ValueError("shard_tokens and seq_len must be positive")
    if seq_len is not None:  # keep whole sequences inside a shard so none is lost at shard boundaries
        shard_tokens = max(seq_len, shard_tokens - shard_tokens % seq_len)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(p.name for p in out_dir.iterdir() if is_data_file(p.name) or p.name == "manifest.json")
    if existing:
        raise DataFileError(f"{out_dir}: already holds {', '.join(existing[:3])}; use an empty directory")
    token_size = token_size_for(tokenizer.vocab_size)
    files: list[ManifestFile] = []
    sources: list[str] = []
    pending: list[np.ndarray] = []
    pending_len = 0

    def flush(final: bool) -> None:
        nonlocal pending, pending_len
        buf = np.concatenate(pending) if pending else np.zeros(0, dtype=np.uint32)
        while len(buf) >= shard_tokens or (final and len(buf)):
            chunk, buf = buf[:shard_tokens], buf[shard_tokens:]
            path = out_dir / f"tokens-{len(files):05d}{suffix}"
            write_token_file(path, chunk, token_size)
            files.append(ManifestFile(path.name, len(chunk), path.stat().st_size, sha256_file(path)))
        pending, pending_len = [buf], len(buf)

    for name, text in documents:
        ids = tokenizer.encode(text)
        if tokenizer.eos_id is not None:
            ids = np.append(ids, np.uint32(tokenizer.eos_id))
        pending.append(ids)
        pending_len += len(ids)
        sources.append(name)
        if pending_len >= shard_tokens:
            flush(final=False)
        if progress is not None:
            progress(len(text))
    flush(final=True)
    if not files:
        raise DataFileError(f"{out_dir}: the inputs produced no tokens")
    total = sum(f.num_tokens for f in files)
    if seq_len is not None and total < seq_len:
        raise DataFileError(f"seq_len {seq_len} is longer than the data: the inputs produced only {total} tokens,"
                            " not one whole sequence")
    manifest = Manifest(token_size, tokenizer.describe(), files, seq_len, sources)
    manifest.save(out_dir)
    return manifest


def _is_dataset_file(path: Path) -> bool:
    return path.is_file() and (is_data_file(path.name) or path.name == "manifest.json")


def prepare_dataset_atomically(documents: Iterable[tuple[str, str]], out_dir: Path, tokenizer: Tokenizer,
                               seq_len: int | None = None, shard_tokens: int = DEFAULT_SHARD_TOKENS,
                               suffix: str = ".npy", progress: Callable[[int], None] | None = None,
                               force: bool = False) -> Manifest:
    """`prepare_dataset` into a hidden directory beside `out_dir`, renamed into place only once complete,
    so a failed or interrupted run (Ctrl-C, a full disk) leaves `out_dir` as it was and never half-written.

    An existing non-empty `out_dir` is replaced only with `force`, and only when it holds nothing but a
    dataset (token files + manifest.json): `--force` must never delete a user's other files."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataFileError(f"{out_dir}: exists and is not a directory")
    entries = sorted(out_dir.iterdir()) if out_dir.is_dir() else []
    foreign = [p.name for p in entries if not _is_dataset_file(p)]
    if foreign:
        raise DataFileError(f"{out_dir}: holds {', '.join(foreign[:3])}, which are not dataset files;"
                            " choose a new or empty directory")
    if entries and not force:
        raise DataFileError(f"{out_dir}: already holds a dataset ({', '.join(p.name for p in entries[:3])});"
                            " use --force to replace it")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as e:
        raise DataFileError(f"{out_dir}: cannot create it ({e.strerror or e}: {e.filename or out_dir.parent})") from e
    try:
        manifest = prepare_dataset(documents, staging, tokenizer, seq_len, shard_tokens, suffix, progress)
        _move_into_place(staging, out_dir)
    except OSError as e:  # a full disk, an unreadable input: named, and nothing half-written stays behind
        shutil.rmtree(staging, ignore_errors=True)
        raise DataFileError(f"preparing {out_dir}: {e.strerror or e} ({e.filename})") from e
    except DataFileError as e:  # named after what the user asked for, not the hidden staging directory
        shutil.rmtree(staging, ignore_errors=True)
        raise DataFileError(str(e).replace(str(staging), str(out_dir))) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename `staging` to `out_dir`; an old `out_dir` is renamed aside first and removed afterwards, so
    at every instant either the old or the new dataset is complete under its name (or briefly neither)."""
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; give it what mkdir would have
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
