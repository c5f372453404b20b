"""Local provider: formats, sequence cutting, shuffle, wrap policy and every bad-file case."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from data_helpers import SEQ_LEN, counting_dataset, pydoc_dataset

from data_providers.local import LocalProvider
from data_providers.token_files import write_token_file
from data_providers.types import BatchId, DataFileError, SampleIndexError, TokenizedData


def samples(provider: LocalProvider, start: int, end: int) -> list[np.ndarray]:
    return [s.input_ids for s in asyncio.run(provider.get_samples(BatchId(start, end)))]


def test_batch_id_is_validated_and_inclusive() -> None:
    b = BatchId(3, 5)
    assert len(b) == 3 and list(b.indices()) == [3, 4, 5] and str(b) == "B[3, 5]"
    assert BatchId(0, 10).contains(b) and not b.contains(BatchId(0, 10))
    with pytest.raises(ValueError, match="start 6 is after end 5"):
        BatchId(6, 5)
    with pytest.raises(ValueError, match="BatchId.start=-1"):
        BatchId(-1, 5)
    with pytest.raises(ValueError, match="must be an int"):
        BatchId(1.0, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="u64"):
        BatchId(0, 2**64)


def test_sequences_are_cut_per_file_without_overlap(tmp_path: Path) -> None:
    # 70 tokens -> 2 sequences (tail of 6 unused), 40 -> 1, 64 -> 2
    d = counting_dataset(tmp_path / "d", [70, 40, 64])
    p = LocalProvider(d, SEQ_LEN, token_size=4)
    assert p.num_samples == 5
    starts = [int(s[0]) for s in samples(p, 0, 4)]
    assert starts == [0, 32, 70, 110, 142]
    for s in samples(p, 0, 4):
        assert np.array_equal(s, np.arange(s[0], s[0] + SEQ_LEN))


def test_npy_bin_and_ds_give_the_same_samples(tmp_path: Path) -> None:
    tokens = np.random.default_rng(1).integers(0, 65535, size=1000)
    for suffix in (".npy", ".bin", ".ds"):
        (tmp_path / suffix[1:]).mkdir()
        write_token_file(tmp_path / suffix[1:] / f"t{suffix}", tokens, 2)
    a, b, c = (LocalProvider(tmp_path / n, SEQ_LEN, token_size=2) for n in ("npy", "bin", "ds"))
    for x, y, z in zip(samples(a, 0, 30), samples(b, 0, 30), samples(c, 0, 30), strict=True):
        assert np.array_equal(x, y) and np.array_equal(y, z)
    assert np.array_equal(samples(a, 3, 3)[0], tokens[96:128])


def test_npy_header_gives_the_token_size(tmp_path: Path) -> None:
    write_token_file(tmp_path / "t.npy", np.arange(100_000, 100_000 + 64), 4)
    p = LocalProvider(tmp_path, SEQ_LEN)  # no token size needed: the header says <u4
    assert p.token_size == 4 and int(samples(p, 1, 1)[0][0]) == 100_032


def test_seeded_shuffle_is_a_deterministic_permutation(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 50])
    plain = LocalProvider(d, SEQ_LEN, token_size=4)
    s1 = LocalProvider(d, SEQ_LEN, token_size=4, shuffle_seed=7)
    s2 = LocalProvider(d, SEQ_LEN, token_size=4, shuffle_seed=7)
    s3 = LocalProvider(d, SEQ_LEN, token_size=4, shuffle_seed=8)
    first = [int(x[0]) // SEQ_LEN for x in samples(s1, 0, 49)]
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert first == [int(x[0]) // SEQ_LEN for x in samples(s2, 0, 49)]
    assert first != [int(x[0]) // SEQ_LEN for x in samples(s3, 0, 49)]
    assert [int(x[0]) // SEQ_LEN for x in samples(plain, 0, 49)] == list(range(50))


def test_wrap_policy_error_names_the_index(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 4])
    p = LocalProvider(d, SEQ_LEN, token_size=4)
    with pytest.raises(SampleIndexError, match=r"index 4 of batch B\[2, 6\] is past the end \(4 samples"):
        samples(p, 2, 6)
    with pytest.raises(SampleIndexError, match="sample index 9 "):
        p.sample_tokens(9)


def test_wrap_policy_wrap_cycles_through_the_data(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 4])
    p = LocalProvider(d, SEQ_LEN, token_size=4, wrap="wrap")
    got = samples(p, 2, 9)
    assert [int(s[0]) // SEQ_LEN for s in got] == [2, 3, 0, 1, 2, 3, 0, 1]


def test_tokenized_data_equality_and_shape() -> None:
    assert TokenizedData(np.arange(4)) == TokenizedData(np.arange(4, dtype=np.uint16))
    assert TokenizedData(np.arange(4)) != TokenizedData(np.arange(1, 5))
    with pytest.raises(ValueError, match="1-D"):
        TokenizedData(np.zeros((2, 2)))


# ---- bad input: each names the file --------------------------------------------------------------

def test_truncated_raw_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\x01\x00" * 40 + b"\x07")
    with pytest.raises(DataFileError, match=r"a\.bin: truncated or wrong token size: 81 bytes"):
        LocalProvider(tmp_path, SEQ_LEN, token_size=2)


def test_wrong_token_size_for_raw_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.ds").write_bytes(b"\x00" * 66)  # 33 u16 tokens, not a whole number of u32
    with pytest.raises(DataFileError, match=r"a\.ds: .*not a multiple of token size 4"):
        LocalProvider(tmp_path, SEQ_LEN, token_size=4)


def test_raw_file_without_token_size_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(DataFileError, match=r"a\.bin: raw token file needs a token size"):
        LocalProvider(tmp_path, SEQ_LEN)


def test_truncated_npy_is_named(tmp_path: Path) -> None:
    write_token_file(tmp_path / "t.npy", np.arange(100), 2)
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[:-10])
    with pytest.raises(DataFileError, match=r"t\.npy: truncated: header promises 100 tokens"):
        LocalProvider(tmp_path, SEQ_LEN)


def test_npy_with_wrong_dtype_fortran_order_or_2d_is_refused(tmp_path: Path) -> None:
    cases = {"f.npy": np.arange(64, dtype=np.float32), "s.npy": np.arange(64, dtype=">u2"),
             "m.npy": np.asfortranarray(np.arange(64, dtype=np.uint16).reshape(8, 8)),
             "c.npy": np.arange(64, dtype=np.uint16).reshape(8, 8)}
    messages = {"f.npy": "dtype <f4 is not a token dtype", "s.npy": "dtype >u2 is not a token dtype",
                "m.npy": "Fortran-ordered", "c.npy": "must be 1-D"}
    for name, arr in cases.items():
        d = tmp_path / name[0]
        d.mkdir()
        np.save(d / name, arr)
        with pytest.raises(DataFileError, match=rf"{name[0]}\.npy: .*{messages[name]}"):
            LocalProvider(d, SEQ_LEN)


def test_npy_with_garbage_header_is_named(tmp_path: Path) -> None:
    (tmp_path / "g.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': ???}  \n" + b"\x00" * 64)
    with pytest.raises(DataFileError, match=r"g\.npy: unreadable \.npy header"):
        LocalProvider(tmp_path, SEQ_LEN)
    (tmp_path / "g.npy").write_bytes(b"PK\x03\x04 not numpy at all")
    with pytest.raises(DataFileError, match=r"g\.npy: not a \.npy file"):
        LocalProvider(tmp_path, SEQ_LEN)


def test_npy_token_size_disagreeing_with_request_is_named(tmp_path: Path) -> None:
    write_token_file(tmp_path / "t.npy", np.arange(64), 2)
    with pytest.raises(DataFileError, match=r"t\.npy: wrong token size: .npy dtype <u2 is 2 bytes, exp"):
        LocalProvider(tmp_path, SEQ_LEN, token_size=4)


def test_manifest_hash_mismatch_names_the_file(tmp_path: Path) -> None:
    d = pydoc_dataset(tmp_path / "d")
    victim = sorted(d.glob("*.npy"))[1]
    raw = bytearray(victim.read_bytes())
    raw[-5] ^= 0x01  # same size, one bit flipped
    victim.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=rf"{victim.name}: sha256 mismatch"):
        LocalProvider(d, SEQ_LEN)
    LocalProvider(d, SEQ_LEN, verify_hashes=False)  # sizes still agree: opens when hashes are skipped


def test_manifest_catches_truncation_missing_and_unlisted_files(tmp_path: Path) -> None:
    d = pydoc_dataset(tmp_path / "d")
    files = sorted(d.glob("*.npy"))
    extra = d / "zz-extra.bin"
    extra.write_bytes(b"\x00\x00" * 64)
    with pytest.raises(DataFileError, match="token files not in manifest.json: zz-extra.bin"):
        LocalProvider(d, SEQ_LEN)
    extra.unlink()
    files[0].write_bytes(files[0].read_bytes()[:-2])
    with pytest.raises(DataFileError, match=rf"{files[0].name}: truncated or altered: \d+ bytes, manifest"):
        LocalProvider(d, SEQ_LEN, verify_hashes=False)
    files[0].unlink()
    with pytest.raises(DataFileError, match=rf"{files[0].name}: listed in manifest.json but missing"):
        LocalProvider(d, SEQ_LEN)


def test_manifest_with_wrong_token_size_or_bad_fields_is_named(tmp_path: Path) -> None:
    d = pydoc_dataset(tmp_path / "d")
    with pytest.raises(DataFileError, match="wrong token size: asked for 4, manifest says 2"):
        LocalProvider(d, SEQ_LEN, token_size=4)
    m = json.loads((d / "manifest.json").read_text())
    m["token_size"] = 4
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataFileError, match=r"tokens-00000\.npy: wrong token size"):
        LocalProvider(d, SEQ_LEN)
    del m["files"][0]["sha256"]
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataFileError, match=r"manifest\.json: manifest field files\[0\]\.sha256 is missing"):
        LocalProvider(d, SEQ_LEN)
    m["files"][0]["sha256"] = "00"
    m["files"][0]["name"] = "../etc/passwd.bin"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataFileError, match=r"files\[0\]\.name '../etc/passwd.bin' is not a plain"):
        LocalProvider(d, SEQ_LEN)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(DataFileError, match="manifest is not valid JSON"):
        LocalProvider(d, SEQ_LEN)


def test_mixed_token_sizes_and_too_short_files_are_refused(tmp_path: Path) -> None:
    write_token_file(tmp_path / "a.npy", np.arange(64), 2)
    write_token_file(tmp_path / "b.npy", np.arange(64), 4)
    with pytest.raises(DataFileError, match=r"files disagree on token size .*a\.npy=2.*b\.npy=4"):
        LocalProvider(tmp_path, SEQ_LEN)
    (tmp_path / "b.npy").unlink()
    with pytest.raises(DataFileError, match="no file holds a full sequence of 100 tokens"):
        LocalProvider(tmp_path, 100)
