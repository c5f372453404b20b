"""psyche keygen / pubkey / airdrop / balance / localnet as a user runs them, including bad input: every
failure is one line with a distinct exit code, never a traceback (checked on the real console script)."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, psyche_env, run_psyche, silent_server
from click.testing import CliRunner
from localnet_harness import Localnet, free_port_pair, funded_wallet_file, rpc
from solders.keypair import Keypair

from client.cli import main
from client.cli_common import ExitCode


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
    res = invoke("airdrop", "1.5", str(wallet), "--url", net.url)
    assert res.exit_code == 0, res.output
    assert "balance: 1.5 SOL" in res.output
    pub = str(Keypair.from_bytes(bytes(json.loads(wallet.read_text()))).pubkey())
    res = invoke("balance", pub, "--url", net.url)
    assert res.exit_code == 0 and res.output.strip() == "1.5 SOL"
    res = invoke("balance", pub, "--url", net.url, "--lamports")
    assert res.exit_code == 0 and res.output.strip() == "1500000000 lamports"


def test_solana_conventions_default_wallet_url_env_and_json(net: Localnet, tmp_path: Path) -> None:
    """`keygen` and `-k` default to ~/.config/solana/id.json (`~` expanded), `airdrop AMOUNT` funds the -k
    wallet, PSYCHE_URL picks the cluster, `-u host:port` needs no scheme, read commands speak JSON."""
    env = psyche_env(HOME=str(tmp_path), PSYCHE_URL=net.url)
    made = run_psyche("keygen", env=env)
    assert made.returncode == 0 and (tmp_path / ".config/solana/id.json").exists(), made.stderr
    pub = json.loads(run_psyche("pubkey", "--output", "json", env=env).stdout)["pubkey"]
    assert pub in made.stdout
    assert run_psyche("pubkey", "-k", "~/.config/solana/id.json", env=env).stdout.strip() == pub
    res = run_psyche("airdrop", "2", "--output", "json", env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["recipient"] == pub and json.loads(res.stdout)["balance_lamports"] == 2 * 10**9
    res = run_psyche("balance", "-u", f"127.0.0.1:{net.port}", "--output", "json", env=psyche_env(HOME=str(tmp_path)))
    assert json.loads(res.stdout) == {"pubkey": pub, "lamports": 2 * 10**9, "sol": "2"}, res.stderr
    assert run_psyche("balance", env=env).stdout.strip() == "2 SOL"


def test_from_wallet_file_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coordinator_sdk.client import Coordinator
    from coordinator_sdk.keypair_file import write_keypair

    monkeypatch.setenv("HOME", str(tmp_path))
    kp = Keypair()
    write_keypair(tmp_path / "w.json", kp)
    coordinator = Coordinator.from_wallet_file("http://127.0.0.1:9", "run", "~/w.json")
    assert coordinator.wallet.pubkey() == kp.pubkey()


@pytest.mark.parametrize("args,fragment", [
    (("balance", "not-a-key", "--url", "http://127.0.0.1:9"), "neither a keypair file nor"),
    (("balance", "missing.json", "--url", "http://127.0.0.1:9"), "missing.json: no such keypair file"),
    (("airdrop", "0", "11111111111111111111111111111111"), "not a positive"),
    (("airdrop", "0.0000000001", "11111111111111111111111111111111"), "whole number of lamports"),
    (("airdrop", "abc", "11111111111111111111111111111111"), "not a number"),
    (("airdrop", "-u", "nowhere://x", "1"), "is not an http(s) RPC URL"),
])
def test_bad_arguments_are_named(args: tuple[str, ...], fragment: str) -> None:
    res = invoke(*args)
    assert res.exit_code != 0 and fragment in res.output, res.output


@pytest.mark.parametrize("content", ["", "[1, 2, 3]", "{\"a\": 1}", "[" + ",".join(["300"] * 64) + "]"])
def test_corrupt_keypair_file_is_rejected(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    res = invoke("balance", str(bad), "--url", "http://127.0.0.1:9")
    assert res.exit_code == ExitCode.WALLET and "bad.json" in res.output


def test_a_corrupt_keypair_file_exits_9_as_recipient_and_as_wallet(tmp_path: Path) -> None:
    """Issue 23: the same corrupt file exited 2 as `airdrop` RECIPIENT and 9 as `-k`; the README's code is 9."""
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    as_recipient = run_psyche("airdrop", "-u", "http://127.0.0.1:9", "1", str(bad))
    assert_one_line_error(as_recipient, ExitCode.WALLET, "bad.json: not a JSON keypair file")
    as_wallet = run_psyche("airdrop", "-u", "http://127.0.0.1:9", "-k", str(bad), "1")
    assert_one_line_error(as_wallet, ExitCode.WALLET, "bad.json: not a JSON keypair file")
    missing = run_psyche("airdrop", "-u", "http://127.0.0.1:9", "1", str(tmp_path / "nope.json"))
    assert_one_line_error(missing, ExitCode.WALLET, "nope.json: no such keypair file")


@pytest.mark.parametrize("amount,fragment", [
    ("nan", "'nan' is not a finite number of SOL"), ("inf", "'inf' is not a finite number of SOL"),
    ("-inf", "is not a finite number"), ("1e30", "more than a Solana balance can hold"),
    ("-1", "not a positive amount"), ("1e-30", "whole number of lamports"),
    ("me.json", "not a number of SOL (usage: psyche airdrop AMOUNT [RECIPIENT])"),
])
def test_airdrop_amounts_are_refused_in_one_line(amount: str, fragment: str) -> None:
    res = run_psyche("airdrop", "-u", "http://127.0.0.1:9", "--", amount, "11111111111111111111111111111111")
    assert_one_line_error(res, ExitCode.USAGE, fragment)


def test_keygen_into_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_psyche("keygen", "-o", "/proc/x"), ExitCode.ERROR, "/proc/x: cannot write the keypair")
    (tmp_path / "file").write_text("")
    res = run_psyche("keygen", "-o", str(tmp_path / "file" / "id.json"))
    assert_one_line_error(res, ExitCode.ERROR, "cannot write the keypair")


def test_missing_and_corrupt_wallets_exit_with_the_wallet_code(tmp_path: Path) -> None:
    env = psyche_env(HOME=str(tmp_path))
    assert_one_line_error(run_psyche("pubkey", env=env), ExitCode.WALLET,
                          f"{tmp_path}/.config/solana/id.json: no such keypair file")
    (tmp_path / "bad.json").write_text("[1, 2")
    assert_one_line_error(run_psyche("balance", "-k", "~/bad.json", env=env), ExitCode.WALLET,
                          "bad.json: not a JSON keypair file")


def test_a_dead_rpc_and_a_silent_rpc_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_psyche("balance", "11111111111111111111111111111111", "-u", "127.0.0.1:9"),
                          ExitCode.RPC_UNREACHABLE, "no Solana JSON-RPC node answers at http://127.0.0.1:9")
    with silent_server() as (port, _):
        res = run_psyche("airdrop", "1", "11111111111111111111111111111111", "-u", f"127.0.0.1:{port}",
                         "--rpc-timeout", "1.5")
    assert_one_line_error(res, ExitCode.RPC_UNREACHABLE, "accepted the connection but did not answer within 1.5 s")


def test_ctrl_c_exits_130_without_a_traceback() -> None:
    from cli_helpers import PSYCHE, REPO

    with silent_server() as (port, accepted):
        proc = subprocess.Popen([PSYCHE, "balance", "11111111111111111111111111111111", "-u", f"127.0.0.1:{port}"],
                                cwd=REPO, env=psyche_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not accepted and time.monotonic() < deadline:  # the command is now waiting on the RPC
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED and err.strip() == "interrupted", (out, err)


def test_unfunded_wallet_and_program_errors_are_named(net: Localnet, tmp_path: Path) -> None:
    """What the SDK raises becomes one line: an unfunded payer is 'has no SOL', a program error keeps its name."""
    from client.cli_chain import chain_errors
    from client.cli_common import CommandFailed
    from coordinator_sdk.client import Coordinator

    async def scenario() -> None:
        broke = Coordinator(net.url, "cli-broke", Keypair())
        with pytest.raises(CommandFailed) as info, chain_errors(broke.wallet.pubkey()):
            await broke.create_run()
        assert info.value.exit_code == ExitCode.WALLET
        assert info.value.message == (f"wallet {broke.wallet.pubkey()} has no SOL (fund it: psyche airdrop 1 "
                                      f"{broke.wallet.pubkey()})")
        _, owner_file = await funded_wallet_file(net.url, tmp_path, "owner")
        _, outsider_file = await funded_wallet_file(net.url, tmp_path, "outsider")
        owner = Coordinator.from_wallet_file(net.url, "cli-named", owner_file)
        outsider = Coordinator.from_wallet_file(net.url, "cli-named", outsider_file)
        with pytest.raises(CommandFailed) as info, chain_errors():
            await outsider.fetch_state()
        assert info.value.exit_code == ExitCode.RUN_NOT_FOUND and "cli-named" in info.value.message
        await owner.create_run()
        with pytest.raises(CommandFailed) as info, chain_errors(outsider.wallet.pubkey()):
            await outsider.withdraw()
        assert info.value.message.startswith("SignerNotAClient: ") and "\n" not in info.value.message
        dead = Coordinator(["http://127.0.0.1:9"], "cli-named", Keypair(), attempts=1)
        with pytest.raises(CommandFailed) as info, chain_errors():
            await dead.fetch_state()
        assert info.value.exit_code == ExitCode.RPC_UNREACHABLE
        for c in (broke, owner, outsider, dead):
            await c.close()

    asyncio.run(scenario())


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
    assert_one_line_error(res, ExitCode.ERROR, f"cannot listen on 127.0.0.1:{net.port}: Address already in use")
