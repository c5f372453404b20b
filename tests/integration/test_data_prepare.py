"""Dataset preparation: byte and HF tokenizers, the pydoc corpus, manifest, CLI, bad inputs."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_psyche
from click.testing import CliRunner
from data_helpers import TEXT_A, TEXT_B, tiny_hf_tokenizer

from client.cli import main
from data_providers.corpus import corpus_documents
from data_providers.local import LocalProvider
from data_providers.manifest import Manifest, sha256_file
from data_providers.prepare import prepare_dataset, prepare_dataset_atomically, text_file_documents
from data_providers.tokenizer import ByteTokenizer, HfTokenizer, load_tokenizer
from data_providers.types import BatchId, DataFileError


def test_byte_prepare_round_trips_text_and_writes_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(TEXT_A)
    (tmp_path / "b.txt").write_text(TEXT_B)
    out = tmp_path / "out"
    m = prepare_dataset(text_file_documents([tmp_path / "a.txt", tmp_path / "b.txt"]), out, ByteTokenizer(),
                        seq_len=16, shard_tokens=500)
    all_bytes = (TEXT_A + TEXT_B).encode()
    assert m.num_tokens == len(all_bytes) and m.token_size == 2 and m.tokenizer["kind"] == "byte"
    assert [f.num_tokens for f in m.files[:-1]] == [496] * (len(m.files) - 1)  # shards hold whole sequences
    loaded = Manifest.load(out)
    assert loaded is not None and loaded.files == m.files and loaded.seq_len == 16
    for f in m.files:
        assert sha256_file(out / f.name) == f.sha256 and (out / f.name).stat().st_size == f.num_bytes
    stream = np.concatenate([np.load(out / f.name) for f in m.files])
    assert stream.tobytes() == np.frombuffer(all_bytes, np.uint8).astype("<u2").tobytes()
    p = LocalProvider(out, 16)
    first = asyncio.run(p.get_samples(BatchId(0, 0)))[0]
    assert ByteTokenizer().decode(first.input_ids) == TEXT_A[:16]


def test_pydoc_corpus_prepares_without_download(tmp_path: Path) -> None:
    docs = list(corpus_documents("pydoc"))
    assert len(docs) > 50 and docs == sorted(docs)
    m = prepare_dataset(docs[:5], tmp_path / "out", ByteTokenizer(), shard_tokens=10_000)
    assert m.source == [name for name, _ in docs[:5]]
    with pytest.raises(ValueError, match="unknown corpus 'wiki'"):
        corpus_documents("wiki")


def test_hf_tokenizer_json_prepare_and_decode(tmp_path: Path) -> None:
    tok_path = tiny_hf_tokenizer(tmp_path / "tokenizer.json")
    tok = load_tokenizer(str(tok_path))
    assert isinstance(tok, HfTokenizer) and tok.eos_id is not None
    (tmp_path / "a.txt").write_text(TEXT_A)
    (tmp_path / "b.txt").write_text(TEXT_B)
    m = prepare_dataset(text_file_documents([tmp_path / "a.txt", tmp_path / "b.txt"]), tmp_path / "out", tok)
    assert m.tokenizer["kind"] == "hf" and m.tokenizer["sha256"] == sha256_file(tok_path)
    ids = np.load(tmp_path / "out" / m.files[0].name)
    assert len(ids) < len(TEXT_A + TEXT_B) / 2  # BPE really merged
    eos_at = np.flatnonzero(ids == tok.eos_id)
    assert len(eos_at) == 2 and eos_at[-1] == len(ids) - 1  # one EOS after each document
    assert tok.decode(ids[:eos_at[0]]) == TEXT_A


def test_bad_tokenizer_and_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"nope\.json: tokenizer file not found"):
        load_tokenizer(str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text('{"version": "1.0", "model": 42}')
    with pytest.raises(DataFileError, match=r"bad\.json: not a valid tokenizer\.json"):
        load_tokenizer(str(tmp_path / "bad.json"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataFileError, match=r"latin1\.txt: not UTF-8 text \(byte 3\)"):
        prepare_dataset(text_file_documents([tmp_path / "latin1.txt"]), tmp_path / "o", ByteTokenizer())
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataFileError, match="the inputs produced no tokens"):
        prepare_dataset(text_file_documents([tmp_path / "empty.txt"]), tmp_path / "o2", ByteTokenizer())


def test_prepare_refuses_a_directory_that_already_holds_tokens(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_dataset([("d", TEXT_A)], out, ByteTokenizer())
    with pytest.raises(DataFileError, match=r"out: already holds manifest.json, tokens-00000.npy"):
        prepare_dataset([("d", TEXT_A)], out, ByteTokenizer())


def test_cli_prepare_verify_and_sample(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(TEXT_A)
    out = tmp_path / "out"
    runner = CliRunner()
    r = runner.invoke(main, ["data", "prepare", str(tmp_path / "a.txt"), "--corpus", "pydoc", "-o", str(out),
                             "--seq-len", "64", "--format", "bin", "--shard-tokens", "100000"])
    assert r.exit_code == 0, r.output
    assert "tokens of 2 bytes, tokenizer byte (vocab 256)" in r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"][0]["name"] == "tokens-00000.bin" and manifest["source"][0].endswith("a.txt")
    r = runner.invoke(main, ["data", "verify", str(out)])
    assert r.exit_code == 0 and "ok:" in r.output, r.output
    r = runner.invoke(main, ["data", "sample", str(out), "--seq-len", "16", "--index", "1", "--decode-bytes"])
    assert r.exit_code == 0 and r.output.strip() == f"1: {TEXT_A[16:32]!r}", r.output
    first = out / "tokens-00000.bin"
    first.write_bytes(first.read_bytes()[:-1])
    r = runner.invoke(main, ["data", "verify", str(out)])
    assert r.exit_code != 0 and "tokens-00000.bin: truncated or altered" in r.output
    r = runner.invoke(main, ["data", "prepare", "-o", str(tmp_path / "x")])
    assert r.exit_code != 0 and "give INPUT files and/or --corpus" in r.output


def test_cli_prepare_is_atomic_shows_progress_and_replaces_only_with_force(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(TEXT_A)
    out = tmp_path / "out"
    first = run_psyche("data", "prepare", str(tmp_path / "a.txt"), "-o", str(out), "--seq-len", "16")
    assert first.returncode == 0 and "tokenizing: 100% (1 of 1 documents)" in first.stderr, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run_psyche("data", "prepare", "--corpus", "pydoc", "-o", str(out), "--seq-len", "16")
    assert_one_line_error(again, 1, "already holds a dataset")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing lost
    forced = run_psyche("data", "prepare", "--corpus", "pydoc", "-o", str(out), "--seq-len", "16", "--force",
                        "--output", "json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["num_tokens"] == Manifest.load(out).num_tokens > len(TEXT_A)  # type: ignore[union-attr]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "out"]  # no staging or old copy left behind
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.md").write_text("mine")
    res = run_psyche("data", "prepare", str(tmp_path / "a.txt"), "-o", str(tmp_path / "notes"), "--force")
    assert_one_line_error(res, 1, "todo.md, which are not dataset files")
    assert (tmp_path / "notes" / "todo.md").read_text() == "mine"


def test_a_failed_prepare_leaves_the_old_dataset_and_no_debris(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(TEXT_A)
    out = tmp_path / "out"
    prepare_dataset_atomically([("d", TEXT_A)], out, ByteTokenizer(), seq_len=16)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def documents():
        yield "d", TEXT_B
        raise KeyboardInterrupt  # Ctrl-C half way through

    with pytest.raises(KeyboardInterrupt):
        prepare_dataset_atomically(documents(), out, ByteTokenizer(), seq_len=16, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "out"]


@pytest.mark.parametrize("args,fragment", [
    (("--seq-len", "4096"), "seq_len 4096 is longer than the data: the inputs produced only"),
    (("--shard-tokens", "5"), "5 is not in the range 1024<=x<=1073741824"),
    (("--shard-tokens", str(1 << 40)), "is not in the range"),
    (("--shard-tokens", "2000", "--seq-len", "4096"), "2000 tokens cannot hold one sequence of --seq-len 4096"),
])
def test_cli_prepare_refuses_impossible_sizes(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    (tmp_path / "a.txt").write_text(TEXT_A)
    res = run_psyche("data", "prepare", str(tmp_path / "a.txt"), "-o", str(tmp_path / "out"), *args)
    assert_one_line_error(res, 1 if "longer than the data" in fragment else 2, fragment)
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_cli_verify_and_sample_speak_json_and_sample_takes_seq_len_from_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(TEXT_A)
    out = tmp_path / "out"
    prepare_dataset_atomically([("a", TEXT_A)], out, ByteTokenizer(), seq_len=16)
    verified = json.loads(run_psyche("data", "verify", str(out), "--output", "json").stdout)
    assert verified == {"directory": str(out), "ok": True, "files": 1, "num_tokens": len(TEXT_A.encode()),
                        "token_size": 2, "seq_len": 16}
    res = run_psyche("data", "sample", str(out), "--index", "1", "--decode-bytes", "--output", "json")
    assert json.loads(res.stdout) == [{"index": 1, "input_ids": list(TEXT_A[16:32].encode()),
                                       "text": TEXT_A[16:32]}], res.stderr
    assert_one_line_error(run_psyche("data", "sample", str(tmp_path / "nope")), 2, "not a dataset directory")


def test_cli_prepare_into_an_impossible_place_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(TEXT_A)
    res = run_psyche("data", "prepare", str(tmp_path / "a.txt"), "-o", "/proc/psyche-ds")
    assert_one_line_error(res, 1, "/proc/psyche-ds: cannot create it (No such file or directory")


def test_an_empty_input_names_the_output_not_the_staging_directory(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    res = CliRunner().invoke(main, ["data", "prepare", str(tmp_path / "empty.txt"), "-o", str(tmp_path / "d2")])
    assert res.exit_code != 0
    last = res.output.strip().splitlines()[-1]
    assert last == f"Error: {tmp_path / 'd2'}: the inputs produced no tokens", res.output
    assert ".partial" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]  # no staging debris either
