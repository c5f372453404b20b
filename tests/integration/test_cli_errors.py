"""Issue 23, one error policy: client.errors maps every failure to one line and the README's exit code, and
the cases users met (a bare `{'Custom': 1}`, `missing nothing, unknown [...]`, an empty reason, a cut-off
program error, `--device tpu` exiting 6) read as what is wrong. No localnet here: the token cases that need
one live in test_treasurer_localnet.py."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from cli_helpers import REPO, assert_one_line_error, run_psyche

from client.errors import (
    CommandFailed,
    ExitCode,
    describe,
    error_line,
    exception_text,
    failure_for,
    shorten,
)
from coordinator_sdk.client import RunNotFound
from coordinator_sdk.keypair_file import KeypairFileError
from coordinator_sdk.model.state import RunState
from coordinator_sdk.program_errors import TransactionFailed, error_class
from coordinator_sdk.rpc_pool import AllEndpointsFailed

TOKEN_FAILED = ["Program TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA invoke [1]",
                "Program log: Error: insufficient funds",
                "Program TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA failed: custom program error: 0x1"]


@pytest.mark.parametrize("exc,code,fragment", [
    (click.BadParameter("'x' is bad"), ExitCode.USAGE, "'x' is bad"),
    (KeyboardInterrupt(), ExitCode.INTERRUPTED, "interrupted"),
    (KeypairFileError("/k.json: not a JSON keypair file"), ExitCode.WALLET, "/k.json: not a JSON keypair file"),
    (RunNotFound("no run 'r'"), ExitCode.RUN_NOT_FOUND, "no run 'r'"),
    (AllEndpointsFailed("every RPC endpoint failed"), ExitCode.RPC_UNREACHABLE, "every RPC endpoint failed"),
    (ConnectionRefusedError(), ExitCode.RPC_UNREACHABLE, "ConnectionRefusedError"),
    (TransactionFailed("transaction failed: AccountNotFound", "AccountNotFound"), ExitCode.WALLET,
     "has no SOL (fund it: psyche airdrop 1"),
    (TransactionFailed("transaction failed", {"InstructionError": [0, {"Custom": 1}]}, TOKEN_FAILED),
     ExitCode.ERROR, "SPL token error InsufficientFunds (code 1, instruction 0)"),
    (error_class(6099, "WitnessAlreadyPosted", "this witness already witnessed this round")(2), ExitCode.ERROR,
     "WitnessAlreadyPosted: this witness already witnessed this round (code 6099, instruction 2)"),
    (CommandFailed("as is", ExitCode.VERSION_MISMATCH), ExitCode.VERSION_MISMATCH, "as is"),
    (ValueError(""), ExitCode.ERROR, "ValueError"),
])
def test_describe_maps_every_failure_to_one_line_and_its_code(exc: BaseException, code: int,
                                                               fragment: str) -> None:
    message, got = describe(exc)
    assert got == code and fragment in message and "\n" not in message, (message, got)
    assert "Custom" not in message


def test_failure_for_names_the_paying_wallet() -> None:
    from solders.pubkey import Pubkey

    key = Pubkey.default()
    failure = failure_for(TransactionFailed("x", "AccountNotFound"), key)
    assert failure is not None and failure.exit_code == ExitCode.WALLET
    assert failure.message == f"wallet {key} has no SOL (fund it: psyche airdrop 1 {key})"
    assert failure_for(RuntimeError("unexpected")) is None  # not the policy's to word: run_main names its type


def test_empty_exception_texts_name_the_exception_type() -> None:
    """blobs.py printed `request failed: ` for an exception without text (an exception object is truthy)."""
    assert exception_text(TimeoutError()) == "TimeoutError"
    assert exception_text(OSError("  ")) == "OSError"
    assert exception_text(ValueError("bad")) == "bad"
    assert error_line(TimeoutError()) == "TimeoutError"


def test_program_errors_are_logged_in_full_and_long_lines_cut_between_words() -> None:
    err = error_class(6098, "WitnessAlreadyPosted", "this witness already witnessed this round")(0)
    assert error_line(err, 20) == "WitnessAlreadyPosted: this witness already witnessed this round (code 6098)"
    text = "the witness was refused because it already witnessed this round"
    cut = shorten(text, 50)
    assert len(cut) <= 50 and cut.endswith("…") and text.startswith(cut[:-1])
    assert text[len(cut) - 1] == " ", cut  # cut at a word boundary, never inside a word
    assert shorten("short", 50) == "short"


def _state(run_state: RunState, epoch: int, members: list[bytes] = ()) -> SimpleNamespace:
    clients = [SimpleNamespace(signer=m) for m in members]
    return SimpleNamespace(run_state=int(run_state), epoch=epoch, num_epoch_clients=len(clients),
                           epoch_clients=clients)


@pytest.mark.parametrize("after,expected", [
    (_state(RunState.WaitingForMembers, 4), 4),  # epoch moves on at Cooldown's end: WFM names the next one
    (_state(RunState.Warmup, 4, [b"me"]), 4),  # the join's own tick started epoch 4 with us in it
    (_state(RunState.RoundTrain, 3), 4),  # the join landed after epoch 3 began: it counts for 4 (logged 3)
    (_state(RunState.Cooldown, 3), 4),
    (_state(RunState.Warmup, 3, [b"other"]), 4),
])
def test_the_join_event_names_the_epoch_the_join_counts_for(after: SimpleNamespace, expected: int) -> None:
    from client.runner.engine import joined_epoch

    assert joined_epoch(after, b"me") == expected


def test_a_misspelt_device_is_a_usage_error() -> None:
    """README: bad arguments exit 2; `--device tpu` exited 6 (device unavailable)."""
    res = run_psyche("run-client", "--run-id", "r", "--device", "tpu", "-u", "http://127.0.0.1:9")
    assert_one_line_error(res, ExitCode.USAGE, "device 'tpu': use auto, cpu, cuda or cuda:N")
    res = run_psyche("run-client", "--run-id", "r", "--device", "cuda:x", "-u", "http://127.0.0.1:9")
    assert_one_line_error(res, ExitCode.USAGE, "expected cuda:N")


def test_run_create_help_names_the_example_that_exists() -> None:
    res = run_psyche("run", "create", "--help")
    assert res.returncode == 0 and "examples/run.toml" in res.stdout and "run.example.toml" not in res.stdout
    assert (REPO / "examples" / "run.toml").is_file()


def _toml(tmp_path: Path, edit) -> Path:
    path = tmp_path / "bad.toml"
    shutil.copy(REPO / "examples" / "run.toml", path)
    path.write_text(edit(path.read_text()))
    return path


@pytest.mark.parametrize("edit,expected", [
    (lambda t: t.replace("[config]", "[config]\nbogus_key = 1", 1), "unknown key 'bogus_key' in [config]"),
    (lambda t: t.replace("[config]", "[config]\nbogus_key = 1\nother = 2", 1).replace("round_witness_time = 1\n", ""),
     "unknown keys 'bogus_key', 'other' in [config]; missing key 'round_witness_time' in [config]"),
    (lambda t: t.replace("[run]", "[run]\ncolour = 1", 1), "unknown key 'colour' in [run]"),
    # two broken rules: both named, none hidden behind "(and 1 more)"
    (lambda t: t.replace("epoch_time = 12", "epoch_time = 10").replace("min_clients = 2 ", "min_clients = 0 "),
     "warmup_time must be < epoch_time; max_round_train_time must be in (0, epoch_time); min_clients must be > 0"),
    (lambda t: t.replace("verifiers_per_mille = 100 ", "verifiers_per_mille = 10001 "),
     "[config]: verifiers_per_mille must be <= 10000"),
    (lambda t: t.replace("verifiers_per_mille = 100 ", "verifiers_per_mille = 65536 "),
     "verifiers_per_mille"),
])
def test_run_toml_errors_read_naturally_and_list_every_problem(tmp_path: Path, edit, expected: str) -> None:
    from client.run_config import RunConfigError, load_run_config

    with pytest.raises(RunConfigError) as info:
        load_run_config(_toml(tmp_path, edit))
    assert expected in str(info.value), str(info.value)
    assert "nothing" not in str(info.value) and "more)" not in str(info.value)


def test_an_unreadable_run_toml_names_the_file_once(tmp_path: Path) -> None:
    path = _toml(tmp_path, lambda t: t + "\n= =\n")
    res = run_psyche("run", "create", "r", "--config", str(path), "-u", "http://127.0.0.1:9")
    assert_one_line_error(res, ExitCode.USAGE, f"{path}: not a readable TOML file")
    assert res.stderr.count(str(path)) == 1, res.stderr
