"""The psyche CLI: only working commands are registered, and they fail cleanly on bad input."""
from __future__ import annotations

from click.testing import CliRunner

from client.cli import main


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
