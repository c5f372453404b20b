"""`psyche data serve-http` / `serve-tcp` as real processes, used by the real clients."""
from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_psyche, sigint_to_a_worker_thread, silent_server
from click.testing import CliRunner
from data_helpers import SEQ_LEN, pydoc_dataset
from nacl.signing import SigningKey

from client.cli import main
from client.cli_common import ExitCode
from data_providers.http import HttpProvider, ManifestUrl
from data_providers.local import LocalProvider
from data_providers.tcp_client import TcpDataProvider
from data_providers.tcp_protocol import RejectedError
from data_providers.types import BatchId

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def psyche(*args: str) -> Iterator[str]:
    """Run `psyche ARGS` until its first stdout line (the address it serves at); stop it afterwards."""
    proc = subprocess.Popen([sys.executable, "-m", "client.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise AssertionError(f"psyche {' '.join(args)} exited: {proc.communicate(timeout=10)[1]}")
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_http_process_serves_the_dataset(tmp_path: Path) -> None:
    d = pydoc_dataset(tmp_path / "d")
    with psyche("data", "serve-http", str(d), "--port", "0") as line:
        url = re.search(r"at (http://127\.0\.0\.1:\d+)", line).group(1)  # type: ignore[union-attr]

        async def fetch() -> None:
            async with HttpProvider(ManifestUrl(url), SEQ_LEN, shuffle_seed=5) as hp:
                want = await LocalProvider(d, SEQ_LEN, shuffle_seed=5).get_samples(BatchId(0, 63))
                assert await hp.get_samples(BatchId(0, 63)) == want

        asyncio.run(fetch())
        args = ["data", "sample", url, "--seq-len", "8", "--index", "2", "--count", "2"]
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0 and r.output.startswith("2: ") and len(r.output.splitlines()) == 2, r.output


def test_serve_tcp_process_serves_only_allowed_keys(tmp_path: Path) -> None:
    d = pydoc_dataset(tmp_path / "d")
    alice, bob = SigningKey.generate(), SigningKey.generate()
    with psyche("data", "serve-tcp", str(d), "--port", "0",  # seq-len from the manifest
                "--allow", bytes(alice.verify_key).hex()) as line:
        assert f"samples of {SEQ_LEN} tokens" in line
        port = int(re.search(r"over TCP at 127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]

        async def fetch() -> None:
            async with TcpDataProvider("127.0.0.1", port, alice) as client:
                want = await LocalProvider(d, SEQ_LEN).get_samples(BatchId(3, 20))
                assert await client.get_samples(BatchId(3, 20)) == want
            with pytest.raises(RejectedError, match="not_in_this_round"):
                await TcpDataProvider("127.0.0.1", port, bob, reconnect_attempts=0).open()

        asyncio.run(fetch())


def test_serve_tcp_refuses_bad_keys_and_bad_directories(tmp_path: Path) -> None:
    d = pydoc_dataset(tmp_path / "d")
    runner = CliRunner()
    r = runner.invoke(main, ["data", "serve-tcp", str(d), "--seq-len", "8", "--allow", "zz"])
    assert r.exit_code != 0 and "'zz' is not hex" in r.output
    r = runner.invoke(main, ["data", "serve-tcp", str(d), "--seq-len", "8", "--allow", "ab" * 31])
    assert r.exit_code != 0 and "is 31 bytes, need 32" in r.output
    (d / "tokens-00000.npy").write_bytes(b"\x93NUMPY")
    r = runner.invoke(main, ["data", "serve-tcp", str(d), "--seq-len", "8", "--allow", "ab" * 32])
    assert r.exit_code != 0 and "tokens-00000.npy: truncated or altered" in r.output


def test_serve_http_refuses_a_busy_port_a_missing_or_empty_directory_in_one_line(tmp_path: Path) -> None:
    import socket

    d = pydoc_dataset(tmp_path / "d")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for command in ("serve-http", "serve-tcp"):
            extra = ("--allow", "ab" * 32) if command == "serve-tcp" else ()
            res = run_psyche("data", command, str(d), "--port", str(port), *extra)
            assert_one_line_error(res, ExitCode.ERROR, f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert_one_line_error(run_psyche("data", "serve-http", str(tmp_path / "nope")), ExitCode.USAGE, "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_psyche("data", "serve-http", str(tmp_path / "empty"), "--port", "0"), ExitCode.ERROR,
                          "holds no manifest.json or token files")


@pytest.mark.parametrize("target", ["process", "worker thread"])
def test_serve_http_stops_on_ctrl_c_without_a_traceback(tmp_path: Path, target: str) -> None:
    import signal

    d = pydoc_dataset(tmp_path / "d")
    from cli_helpers import PSYCHE

    proc = subprocess.Popen([PSYCHE, "data", "serve-http", str(d), "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "serving" in proc.stdout.readline()
        if target == "process":
            proc.send_signal(signal.SIGINT)
        else:
            sigint_to_a_worker_thread(proc.pid)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and err.strip() == "stopped", err


def test_serve_tcp_run_id_dead_and_silent_rpc_and_missing_seq_len(tmp_path: Path) -> None:
    d = pydoc_dataset(tmp_path / "d")
    res = run_psyche("data", "serve-tcp", str(d), "--run-id", "r" * 33, "--port", "0")
    assert_one_line_error(res, ExitCode.USAGE, "is 33 bytes; the coordinator allows at most 32")
    res = run_psyche("data", "serve-tcp", str(d), "--run-id", "r", "-u", "127.0.0.1:9", "--port", "0")
    assert_one_line_error(res, ExitCode.RPC_UNREACHABLE, "no RPC endpoint answered")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    with silent_server() as (port, _):
        res = run_psyche("data", "serve-tcp", str(d), "--run-id", "r", "-u", f"127.0.0.1:{port}", "--port", "0",
                         "--rpc-timeout", "0.5")
    assert_one_line_error(res, ExitCode.RPC_UNREACHABLE, "ReadTimeout: no answer within 0.5 s")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "tokens-00000.npy").write_bytes((d / "tokens-00000.npy").read_bytes())
    res = run_psyche("data", "serve-tcp", str(raw), "--allow", "ab" * 32, "--port", "0")
    assert_one_line_error(res, ExitCode.USAGE, "give --seq-len")


def test_sample_from_a_silent_or_dead_http_server_is_one_line() -> None:
    with silent_server() as (port, _):
        res = run_psyche("data", "sample", f"http://127.0.0.1:{port}", "--seq-len", "8", "--timeout", "0.3")
    assert_one_line_error(res, ExitCode.ERROR, "manifest.json: no answer within 0.3 s (timeout) (gave up after 4")
    res = run_psyche("data", "sample", "http://127.0.0.1:9", "--seq-len", "8")
    assert_one_line_error(res, ExitCode.ERROR, "Cannot connect to host 127.0.0.1:9")
