"""psyche keygen / airdrop / balance / localnet as a user runs them, including bad input."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from localnet_harness import Localnet, free_port_pair, rpc
from solders.keypair import Keypair

from client.cli import main


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ln = Localnet(tmp_path_factory.mktemp("cli") / "ledger")
    yield ln
    ln.stop()


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_keygen_writes_a_solana_cli_keypair(tmp_path: Path) -> None:
    out = tmp_path / "id.json"
    res = invoke("keygen", "-o", str(out))
    assert res.exit_code == 0, res.output
    raw = json.loads(out.read_text())
    kp = Keypair.from_bytes(bytes(raw))
    assert str(kp.pubkey()) in res.output
    assert out.stat().st_mode & 0o777 == 0o600
    again = invoke("keygen", "-o", str(out))
    assert again.exit_code != 0 and "already exists" in again.output
    assert json.loads(out.read_text()) == raw  # nothing lost


def test_airdrop_then_balance(net: Localnet, tmp_path: Path) -> None:
    wallet = tmp_path / "w.json"
    invoke("keygen", "-o", str(wallet))
    res = invoke("airdrop", str(wallet), "1.5", "--url", net.url)
    assert res.exit_code == 0, res.output
    assert "balance: 1.5 SOL" in res.output
    pub = str(Keypair.from_bytes(bytes(json.loads(wallet.read_text()))).pubkey())
    res = invoke("balance", pub, "--url", net.url)
    assert res.exit_code == 0 and res.output.strip() == "1.5 SOL"


@pytest.mark.parametrize("args,fragment", [
    (("balance", "not-a-key", "--url", "http://127.0.0.1:9"), "neither a keypair file nor"),
    (("airdrop", "11111111111111111111111111111111", "0"), "not a positive"),
    (("airdrop", "11111111111111111111111111111111", "0.0000000001"), "whole number of lamports"),
    (("airdrop", "11111111111111111111111111111111", "abc"), "not a number"),
    (("balance", "11111111111111111111111111111111", "--url", "http://127.0.0.1:9"), "no Solana JSON-RPC node"),
])
def test_bad_arguments_are_named(args: tuple[str, ...], fragment: str) -> None:
    res = invoke(*args)
    assert res.exit_code != 0 and fragment in res.output, res.output


@pytest.mark.parametrize("content", ["", "[1, 2, 3]", "{\"a\": 1}", "[" + ",".join(["300"] * 64) + "]"])
def test_corrupt_keypair_file_is_rejected(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    res = invoke("balance", str(bad), "--url", "http://127.0.0.1:9")
    assert res.exit_code == 2 and "bad.json" in res.output


def test_localnet_command_starts_prints_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port_pair()
    proc = subprocess.Popen([sys.executable, "-m", "client.cli", "localnet", "--rpc-port", str(port),
                             "--ledger", str(tmp_path / "l")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if rpc(f"http://127.0.0.1:{port}", "getHealth").get("result") == "ok":
                    break
            except OSError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    for needle in (f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port + 1}", "program hello", "faucet", "stopped"):
        assert needle in out, out


def test_localnet_port_in_use_is_a_clean_error(net: Localnet, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "client.cli", "localnet", "--rpc-port", str(net.port),
                          "--ledger", str(tmp_path / "l2"), "--quiet"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "cannot start the localnet" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr
