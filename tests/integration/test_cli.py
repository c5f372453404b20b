"""The psyche CLI: only working commands are registered, and they fail cleanly on bad input."""
from __future__ import annotations

import click
import pytest
from cli_helpers import run_psyche
from click.testing import CliRunner

from client.cli import main
from client.cli_common import ExitCode, derive_ws_url, resolve_url, validate_run_id
from coordinator_sdk.codec import CoordinatorCodec


def test_help_lists_program_group() -> None:
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "program" in res.output


def test_unknown_command_is_a_usage_error() -> None:
    res = CliRunner().invoke(main, ["frobnicate"])
    assert res.exit_code == 2 and "No such command" in res.output


def test_program_build_check_matches_committed(clang: str) -> None:
    from programs.build import clang_version, committed_toolchain

    res = CliRunner().invoke(main, ["program", "build", "--check"])
    if committed_toolchain() != clang_version(clang):
        assert res.exit_code != 0
    else:
        assert res.exit_code == 0, res.output
        assert "hello: identical" in res.output


def test_program_build_into_dir(clang: str, tmp_path) -> None:
    res = CliRunner().invoke(main, ["program", "build", "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "hello.so").stat().st_size > 1000


def test_help_lists_every_wallet_command() -> None:
    res = CliRunner().invoke(main, ["--help"])
    for name in ("keygen", "pubkey", "airdrop", "balance", "data", "localnet"):
        assert name in res.output


@pytest.mark.parametrize("run_id", ["r", "a" * 32, "é" * 16, "demo-run_1"])
def test_run_ids_the_program_can_hold_pass(run_id: str) -> None:
    assert validate_run_id(run_id) == run_id
    CoordinatorCodec().instance_pda(run_id)  # the codec agrees


@pytest.mark.parametrize("run_id,fragment", [
    ("", "the run id is empty"), ("a" * 33, "is 33 bytes; the coordinator allows at most 32"),
    ("é" * 17, "is 34 bytes"), ("my run", "whitespace"), ("run\x00", "control characters"),
])
def test_run_ids_the_program_cannot_hold_are_named(run_id: str, fragment: str) -> None:
    with pytest.raises(click.BadParameter, match=fragment):
        validate_run_id(run_id)


def test_the_url_monikers_and_ws_derivation() -> None:
    assert resolve_url("localhost") == "http://127.0.0.1:8899"
    assert resolve_url("127.0.0.1:9000") == "http://127.0.0.1:9000"
    assert resolve_url("devnet") == "https://api.devnet.solana.com"
    assert derive_ws_url("http://127.0.0.1:8899") == "ws://127.0.0.1:8900"
    with pytest.raises(click.BadParameter, match="invalid port"):
        resolve_url("http://127.0.0.1:99999")


def test_no_traceback_reaches_a_user_from_the_console_script() -> None:
    res = run_psyche("frobnicate")
    assert res.returncode == ExitCode.USAGE and "Traceback" not in res.stderr
    res = run_psyche("--version")
    assert res.returncode == 0 and "psyche" in res.stdout


def test_program_build_speaks_json(clang: str, tmp_path) -> None:
    import json

    res = CliRunner().invoke(main, ["program", "build", "--out-dir", str(tmp_path), "--output", "json"])
    assert res.exit_code == 0, res.output
    built = json.loads(res.output)
    assert built["hello"]["bytes"] == (tmp_path / "hello.so").stat().st_size
