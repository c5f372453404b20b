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
from click.testing import CliRunner
from data_helpers import SEQ_LEN, pydoc_dataset
from nacl.signing import SigningKey

from client.cli import main
from data_providers.http import HttpProvider, ManifestUrl
from data_providers.local import LocalProvider
from data_providers.tcp_client import TcpDataProvider
from data_providers.tcp_protocol import RejectedError
from data_providers.types import BatchId

REPO = Path(__file__).resolve().parents[1]


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
    with psyche("data", "serve-tcp", str(d), "--seq-len", str(SEQ_LEN), "--port", "0",
                "--allow", bytes(alice.verify_key).hex()) as line:
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
