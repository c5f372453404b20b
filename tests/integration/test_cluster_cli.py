"""Commands on a real localnet process, pointed at the programs by configuration: `run create` quotes what
the run costs and refuses a wallet that cannot pay before sending anything; a command pointed at program ids
where nothing (or another program) is deployed fails with one line naming the id and where it came from;
a treasurer run bound to another coordinator than the configured one is refused."""
from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from localnet_harness import Localnet, funded_wallet_file
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from client.cli import main
from client.cli_common import ExitCode
from coordinator_sdk.client import use_program_ids
from programs.deploy import program_id_for

REPO = Path(__file__).resolve().parents[2]
CONFIG_ENV = ("PSYCHE_URL", "PSYCHE_KEYPAIR", "PSYCHE_WALLET", "PSYCHE_CONFIG", "PSYCHE_COORDINATOR_PROGRAM",
              "PSYCHE_TREASURER_PROGRAM")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    """No config of the machine's user leaks in; the SDK's default ids are the localnet's again afterwards."""
    for k in CONFIG_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield
    use_program_ids(None, None)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ln = Localnet(tmp_path_factory.mktemp("cluster") / "ledger")
    yield ln
    ln.stop()


def _toml(tmp_path: Path) -> Path:
    toml = tmp_path / "run.toml"
    shutil.copy(REPO / "examples" / "run.toml", toml)
    from run_client_helpers import prepare_data  # run create refuses a local: location that is not prepared

    toml.write_text(toml.read_text().replace('"../.demo/data/pydoc"', f'"{prepare_data(tmp_path)}"'))
    return toml


def _balance(net: Localnet, key: Pubkey) -> int:
    from solana.rpc.api import Client

    return Client(net.url).get_balance(key).value


def _quoted(output: str) -> int:
    sol = re.search(r"creating this run costs ([0-9.]+) SOL", output).group(1)
    return round(float(sol) * 10**9)


def test_run_create_quotes_its_cost_and_pays_exactly_that(net: Localnet, tmp_path) -> None:
    owner, path = asyncio.run(funded_wallet_file(net.url, tmp_path, "owner", 5 * 10**9))
    before = _balance(net, owner.pubkey())
    res = invoke("run", "create", "cost-run", "--config", str(_toml(tmp_path)), "--paused", "-k", path, "-u", net.url)
    assert res.exit_code == 0, res.output
    assert "coordinator account 1.05168384," in res.output, res.output
    quoted = _quoted(res.output)
    assert before - _balance(net, owner.pubkey()) == quoted  # rent of every account + every base fee, exactly


def test_treasurer_run_create_quotes_its_cost(net: Localnet, tmp_path) -> None:
    owner, path = asyncio.run(funded_wallet_file(net.url, tmp_path, "towner", 5 * 10**9))
    mint = re.search(r"mint (\w+)", invoke("token", "create-mint", "-k", path, "-u", net.url).output).group(1)
    before = _balance(net, owner.pubkey())
    res = invoke("run", "create", "tcost-run", "--config", str(_toml(tmp_path)), "--treasurer", "--mint", mint,
                 "-k", path, "-u", net.url)
    assert res.exit_code == 0, res.output
    assert "treasurer Run" in res.output and "reward vault" in res.output
    assert before - _balance(net, owner.pubkey()) == _quoted(res.output)


def test_run_create_refuses_a_wallet_that_cannot_pay(net: Localnet, tmp_path) -> None:
    poor, path = asyncio.run(funded_wallet_file(net.url, tmp_path, "poor", 580_000_000))
    res = invoke("run", "create", "poor-run", "--config", str(_toml(tmp_path)), "-k", path, "-u", net.url)
    assert res.exit_code == ExitCode.WALLET, res.output
    line = res.output.strip().splitlines()[-1]
    assert re.fullmatch(rf"Error: run create needs 1\.0550\d+ SOL, the wallet {poor.pubkey()} has 0\.58 SOL "
                        rf"\(fund it: psyche airdrop 0\.4750\d+ {poor.pubkey()}\)", line), line
    assert "InstructionError" not in res.output and "Custom" not in res.output
    assert _balance(net, poor.pubkey()) == 580_000_000  # nothing was sent
    res = invoke("run", "status", "poor-run", "-u", net.url)
    assert res.exit_code == ExitCode.RUN_NOT_FOUND


def test_commands_pointed_at_wrong_program_ids(net: Localnet, tmp_path) -> None:
    owner, path = asyncio.run(funded_wallet_file(net.url, tmp_path, "wrong", 5 * 10**9))
    nowhere = str(Keypair().pubkey())
    res = invoke("run", "create", "wrong-run", "--config", str(_toml(tmp_path)), "-k", path, "-u", net.url,
                 "--coordinator-program", nowhere)
    assert res.exit_code == ExitCode.ERROR, res.output
    assert f"the coordinator program id {nowhere} holds no account on this cluster" in res.output
    assert _balance(net, owner.pubkey()) == 5 * 10**9  # refused before any transaction
    # A program that exists but is not the coordinator (the treasurer), named through the environment.
    res = CliRunner().invoke(main, ["run", "pause", "wrong-run", "-k", path, "-u", net.url],
                             env={"PSYCHE_COORDINATOR_PROGRAM": str(program_id_for("treasurer"))})
    assert res.exit_code == ExitCode.RUN_NOT_FOUND and f"of coordinator program {program_id_for('treasurer')}" \
        in res.output, res.output
    res = invoke("run", "status", "anything", "-u", net.url, "--coordinator-program", nowhere)
    assert res.exit_code == ExitCode.RUN_NOT_FOUND and f"of coordinator program {nowhere}" in res.output
    res = invoke("rewards", "show", "--run-id", "anything", "-u", net.url, "--treasurer-program", nowhere)
    assert res.exit_code == ExitCode.RUN_NOT_FOUND and f"of treasurer program {nowhere}" in res.output
    # run-client, as its own process, configured through the environment like the other commands.
    from devtools.local_cluster import psyche

    p = psyche("run-client", "--run-id", "anything", "-u", net.url, check=False, timeout=120,
               env={"PSYCHE_KEYPAIR": path, "PSYCHE_COORDINATOR_PROGRAM": nowhere, "HOME": str(tmp_path)})
    assert p.returncode == ExitCode.RUN_NOT_FOUND, p.stdout + p.stderr
    assert f"of coordinator program {nowhere}" in p.stdout + p.stderr


def test_a_treasurer_run_of_another_coordinator_is_refused(net: Localnet, tmp_path) -> None:
    """The treasurer run was created with (bound to) the localnet's coordinator; a client configured with
    another coordinator id must not read it as that coordinator's run (nor fund or claim from it)."""
    owner, path = asyncio.run(funded_wallet_file(net.url, tmp_path, "bound", 5 * 10**9))
    mint = re.search(r"mint (\w+)", invoke("token", "create-mint", "-k", path, "-u", net.url).output).group(1)
    res = invoke("run", "create", "bound-run", "--config", str(_toml(tmp_path)), "--treasurer", "--mint", mint,
                 "--paused", "-k", path, "-u", net.url)
    assert res.exit_code == 0, res.output
    assert invoke("rewards", "show", "--run-id", "bound-run", "-u", net.url).exit_code == 0
    other = str(Keypair().pubkey())
    res = invoke("rewards", "show", "--run-id", "bound-run", "-u", net.url, "--coordinator-program", other)
    assert res.exit_code == ExitCode.RUN_NOT_FOUND, res.output
    assert (f"treasurer run 'bound-run' administers coordinator program {program_id_for('coordinator')}, not "
            f"{other}") in res.output
