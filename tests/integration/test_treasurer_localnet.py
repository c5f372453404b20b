"""Tokens end to end on a real localnet process over JSON-RPC: an operator mints a token and creates a
treasurer run with the CLI and the SDK, three clients play an epoch, each claims with `psyche rewards
claim`, a second claim is refused, and every balance is exact."""
from __future__ import annotations

import asyncio
import json
import re

import pytest
from chain_epoch import CONFIG, play_epoch
from click.testing import CliRunner
from localnet_harness import Localnet, funded_wallet_file
from solders.keypair import Keypair

from client.cli import main
from coordinator_sdk.client import Coordinator
from coordinator_sdk.treasurer import Treasurer, default_treasurer_codec

PER_POINT = 1000
RUN_ID = "tokens-e2e"


async def prefund(url: str, *keys) -> None:
    from solana.rpc.async_api import AsyncClient

    async with AsyncClient(url) as client:
        for key in keys:
            await client.confirm_transaction((await client.request_airdrop(key, 890_880)).value)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ln = Localnet(tmp_path_factory.mktemp("treasurer") / "ledger")
    yield ln
    ln.stop()


def test_treasurer_run_with_three_clients(net: Localnet, tmp_path) -> None:
    operator, op_path = asyncio.run(funded_wallet_file(net.url, tmp_path, "operator"))
    clients = [asyncio.run(funded_wallet_file(net.url, tmp_path, f"client{i}")) for i in range(3)]

    res = invoke("token", "create-mint", "--decimals", "6", "-k", op_path, "-u", net.url)
    assert res.exit_code == 0, res.output
    mint = re.search(r"mint (\w+)", res.output).group(1)
    res = invoke("token", "mint", mint, "5000", "-k", op_path, "-u", net.url)
    assert res.exit_code == 0 and "balance 5000.000000" in res.output, res.output

    # Squatters pre-fund the run's Run PDA and a client's Participant PDA (plain lamports, here by airdrop):
    # neither blocks run_create nor that client's `psyche rewards claim`.
    codec = default_treasurer_codec()
    asyncio.run(prefund(net.url, codec.run_for(RUN_ID), codec.participant_pda(codec.run_for(RUN_ID),
                                                                              clients[0][0].pubkey())))

    async def create() -> None:
        from solders.pubkey import Pubkey

        async with Treasurer(net.url, RUN_ID, operator) as t:
            await t.create_run(Pubkey.from_string(mint), collateral_per_point=PER_POINT)
            await t.update(config=CONFIG, epoch_rates=(900, 10))
            await t.set_paused(False)

    asyncio.run(create())
    res = invoke("run", "fund", RUN_ID, "1000", "-k", op_path, "-u", net.url)
    assert res.exit_code == 0 and "vault balance 1000.000000" in res.output, res.output

    async def play() -> None:
        players = [Coordinator(net.url, RUN_ID, kp) for kp, _ in clients]
        await play_epoch(players[0], players)
        for p in players:
            await p.close()

    asyncio.run(play())
    res = invoke("rewards", "show", "--run-id", RUN_ID, "--json", "-u", net.url)
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["vault_balance"] == 1000 * 10**6 and shown["collateral_per_point"] == PER_POINT
    assert sorted(p["user"] for p in shown["participants"]) == sorted(str(kp.pubkey()) for kp, _ in clients)
    for p in shown["participants"]:
        assert (p["earned"], p["claimable_points"], p["claimable_amount"], p["token_balance"]) == \
            (300, 300, 300 * PER_POINT, 0)

    for _, path in clients:
        res = invoke("rewards", "claim", "--run-id", RUN_ID, "-k", path, "-u", net.url)
        assert res.exit_code == 0, res.output
        assert "claimed 300 points = 0.300000 tokens" in res.output and "balance 0.300000" in res.output
        again = invoke("rewards", "claim", "--run-id", RUN_ID, "-k", path, "-u", net.url)
        assert again.exit_code == 0 and "nothing to claim" in again.output

    async def double_claim_and_balances() -> None:
        async with Treasurer(net.url, RUN_ID, clients[0][0]) as t:
            with pytest.raises(t.codec.errors["ClaimExceedsEarned"]):
                await t.participant_claim(1)
            for kp, _ in clients:
                assert await t.token_balance(kp.pubkey()) == 300 * PER_POINT
            assert await t.vault_balance() == 1000 * 10**6 - 900 * PER_POINT
            assert await t.token_balance(operator.pubkey()) == 4000 * 10**6
            run = await t.fetch_run()
            assert (run.total_claimed_earned_points, run.total_claimed_collateral_amount) == (900, 900 * PER_POINT)

    asyncio.run(double_claim_and_balances())
    res = invoke("rewards", "show", "--run-id", RUN_ID, str(clients[1][0].pubkey()), "-u", net.url)
    assert res.exit_code == 0 and str(clients[1][0].pubkey()) in res.output
    assert re.search(r"300\s+0\s+300\s+0\s+0\.000000", res.output), res.output


def test_cli_refusals(net: Localnet, tmp_path) -> None:
    _, path = asyncio.run(funded_wallet_file(net.url, tmp_path, "someone"))
    res = invoke("token", "create-mint", "-k", path, "-u", "devnet")
    assert res.exit_code == 2 and "only runs against a local validator" in res.output
    res = invoke("rewards", "show", "--run-id", "no-such-run", "-u", net.url)
    assert res.exit_code == 3 and "no treasurer run" in res.output
    asyncio.run(prefund(net.url, default_treasurer_codec().run_for("squatted-run")))  # lamports, no Run yet
    res = invoke("rewards", "show", "--run-id", "squatted-run", "-u", net.url)
    assert res.exit_code == 3 and "no treasurer run" in res.output, res.output
    res = invoke("rewards", "claim", "--run-id", "x", "-k", str(tmp_path / "missing.json"), "-u", net.url)
    assert res.exit_code == 9 and "wallet" in res.output
    res = invoke("token", "mint", "11111111111111111111111111111111", "1", "-k", path, "-u", net.url)
    assert res.exit_code == 1 and "not an SPL Token account" in res.output, res.output
    res = invoke("token", "mint", str(Keypair().pubkey()), "1", "-k", path, "-u", net.url)
    assert res.exit_code == 2 and "does not exist" in res.output, res.output
    res = invoke("run", "fund", "no-such-run", "1", "-k", path, "-u", net.url)
    assert res.exit_code == 3 and "no treasurer run" in res.output


def test_run_create_treasurer_from_run_toml(net: Localnet, tmp_path) -> None:
    """`psyche run create --treasurer --mint` makes the treasurer administer the run; the run group's
    owner commands (pause, resume, update) then go through the treasurer by themselves."""
    import shutil
    from pathlib import Path

    from run_client_helpers import prepare_data

    toml = tmp_path / "run.toml"
    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "run.toml", toml)
    # the example's data directory is the demo's; run create refuses a local: location that is not prepared
    toml.write_text(toml.read_text().replace('"../.demo/data/pydoc"', f'"{prepare_data(tmp_path)}"'))
    operator, op_path = asyncio.run(funded_wallet_file(net.url, tmp_path, "operator2", 20 * 10**9))
    mint = re.search(r"mint (\w+)", invoke("token", "create-mint", "-k", op_path, "-u", net.url).output).group(1)
    assert invoke("token", "mint", mint, "10", "-k", op_path, "-u", net.url).exit_code == 0
    res = invoke("run", "create", "toml-run", "--config", str(toml), "--treasurer", "--mint", mint,
                 "--collateral-per-point", "5", "--paused", "-k", op_path, "-u", net.url)
    assert res.exit_code == 0, res.output
    assert "treasurer run" in res.output
    res = invoke("run", "create", "other", "--config", str(toml), "--treasurer", "-k", op_path, "-u", net.url)
    assert res.exit_code == 2 and "--treasurer and --mint go together" in res.output

    async def check() -> None:
        async with Treasurer(net.url, "toml-run", operator) as t:
            inst = await t.fetch_instance()
            assert inst.main_authority == t.run
            run = await t.fetch_run()
            assert run.collateral_per_point == 5 and str(run.collateral_mint) == mint
            st = await t.fetch_state()
            assert st.run_state == 0 and st.checkpoint_len > 0  # not started; checkpoint set via the treasurer

    asyncio.run(check())
    res = invoke("run", "resume", "toml-run", "-k", op_path, "-u", net.url)
    assert res.exit_code == 0, res.output
    res = invoke("run", "pause", "toml-run", "-k", op_path, "-u", net.url)
    assert res.exit_code == 0, res.output
    res = invoke("run", "update", "toml-run", "--config", str(toml), "-k", op_path, "-u", net.url)
    assert res.exit_code == 0, res.output
    res = invoke("run", "fund", "toml-run", "2.5", "-k", op_path, "-u", net.url)
    assert res.exit_code == 0 and "vault balance 2.500000" in res.output, res.output


def test_an_evicted_earner_is_shown_and_paid_its_banked_points(net: Localnet, tmp_path) -> None:
    """A registry of 3 slots, 3 clients earn in an epoch; a newcomer's join (the SDK passes the evictee's
    points PDA) takes a slot; `psyche run status` and `psyche rewards show` still count the evictee's points
    (banked), and `psyche rewards claim` pays them once."""
    operator, _ = asyncio.run(funded_wallet_file(net.url, tmp_path, "bank-operator"))
    clients = [asyncio.run(funded_wallet_file(net.url, tmp_path, f"bank{i}")) for i in range(4)]
    mint = re.search(r"mint (\w+)", invoke("token", "create-mint", "-k", str(tmp_path / "bank-operator.json"),
                                           "-u", net.url).output).group(1)
    run_id = "tokens-bank"
    config = {**CONFIG, "global_batch_size_start": 3, "global_batch_size_end": 3, "total_steps": 1000,
              "epoch_time": 15, "max_round_train_time": 10, "warmup_time": 10}

    async def setup_and_play() -> str:
        from solders.pubkey import Pubkey

        async with Treasurer(net.url, run_id, operator) as t:
            await t.create_run(Pubkey.from_string(mint), collateral_per_point=PER_POINT)
            await t.update(config=config, epoch_rates=(900, 0))
            await t.set_paused(False)
        players = [Coordinator(net.url, run_id, kp) for kp, _ in clients[:3]]
        await play_epoch(players[0], players)
        for p in players:
            await p.close()
        async with Coordinator(net.url, run_id, clients[3][0]) as newcomer:
            from coordinator_sdk.points import evictee

            gone = evictee(await newcomer.fetch_state(), newcomer.wallet.pubkey())
            await newcomer.join_run(Keypair().pubkey(), "127.0.0.1:0")
            assert (await newcomer.banked_points())[bytes(gone)] == (300, 0)
        return str(gone)

    gone = asyncio.run(setup_and_play())
    assert invoke("token", "mint", mint, "10", "-k", str(tmp_path / "bank-operator.json"), "-u", net.url).exit_code == 0
    assert invoke("run", "fund", run_id, "10", "-k", str(tmp_path / "bank-operator.json"), "-u", net.url).exit_code == 0
    res = invoke("run", "status", run_id, "--json", "-u", net.url)
    assert res.exit_code == 0, res.output
    shown = {c["wallet"]: c for c in json.loads(res.output)["clients"]}
    assert (shown[gone]["state"], shown[gone]["earned"], shown[gone]["banked_earned"]) == ("evicted", 300, 300)
    res = invoke("rewards", "show", "--run-id", run_id, gone, "--json", "-u", net.url)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["participants"][0]["claimable_points"] == 300
    res = invoke("rewards", "show", "--run-id", run_id, "--json", "-u", net.url)  # everyone, the evictee too
    assert {p["user"]: p["earned"] for p in json.loads(res.output)["participants"]}[gone] == 300
    path = next(p for kp, p in clients if str(kp.pubkey()) == gone)
    res = invoke("rewards", "claim", "--run-id", run_id, "-k", path, "-u", net.url)
    assert res.exit_code == 0 and "claimed 300 points" in res.output, res.output
    again = invoke("rewards", "claim", "--run-id", run_id, "-k", path, "-u", net.url)
    assert again.exit_code == 0 and "nothing to claim" in again.output, again.output


def test_token_amount_and_funding_errors_are_named(net: Localnet, tmp_path) -> None:
    """Issue 23: each of these printed a library's words (`{'Custom': 1}`, `InvalidOperation`, `struct '<Q'
    error`, `AccountNotFound`); each must name what is wrong, with the README's exit code."""
    from solders.pubkey import Pubkey

    from client.errors import ExitCode, failure_for
    from coordinator_sdk.keypair_file import write_keypair
    from coordinator_sdk.program_errors import TransactionFailed

    operator, op_path = asyncio.run(funded_wallet_file(net.url, tmp_path, "op23"))
    res = invoke("token", "create-mint", "--decimals", "6", "-k", op_path, "-u", net.url)
    assert res.exit_code == 0, res.output
    mint = re.search(r"mint (\w+)", res.output).group(1)
    assert invoke("token", "mint", mint, "100", "-k", op_path, "-u", net.url).exit_code == 0

    async def create() -> None:
        async with Treasurer(net.url, "errors-23", operator) as t:
            await t.create_run(Pubkey.from_string(mint), collateral_per_point=PER_POINT)

    asyncio.run(create())
    res = invoke("run", "fund", "errors-23", "1000000000", "-k", op_path, "-u", net.url)
    assert res.exit_code == ExitCode.ERROR, res.output
    assert "insufficient funds" in res.output and "holds 100.000000" in res.output, res.output
    assert "asked 1000000000.000000" in res.output and "Custom" not in res.output, res.output
    for amount, fragment in (("nan", "is not a number of tokens"), ("inf", "is not a number of tokens"),
                             ("-5", "not a positive amount"), ("1.0000001", "more decimals than the mint's 6"),
                             ("abc", "is not a number of tokens")):
        res = invoke("run", "fund", "-k", op_path, "-u", net.url, "errors-23", "--", amount)
        assert res.exit_code == ExitCode.USAGE and fragment in res.output, (amount, res.output)
        assert "InvalidOperation" not in res.output
    res = invoke("token", "mint", mint, "99999999999999999999", "-k", op_path, "-u", net.url)
    assert res.exit_code == ExitCode.USAGE and "more than the u64 maximum" in res.output, res.output
    assert "struct" not in res.output

    # The SPL program's own refusal (a race past the CLI's balance check) is named too, not `{'Custom': 1}`.
    async def overdraw() -> TransactionFailed:
        async with Treasurer(net.url, "errors-23", operator) as t:
            with pytest.raises(TransactionFailed) as info:
                await t.fund(10**12)
            return info.value

    failure = failure_for(asyncio.run(overdraw()), operator.pubkey())
    assert failure is not None and "InsufficientFunds" in failure.message, failure and failure.message

    broke = Keypair()
    write_keypair(tmp_path / "broke.json", broke)
    res = invoke("token", "create-mint", "-k", str(tmp_path / "broke.json"), "-u", net.url)
    assert res.exit_code == ExitCode.WALLET, res.output
    assert f"wallet {broke.pubkey()} has no SOL (fund it: psyche airdrop 1 {broke.pubkey()})" in res.output
    assert "AccountNotFound" not in res.output
