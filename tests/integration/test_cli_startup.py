"""`psyche` commands that do not train never import torch, and `--version` / `balance` not even numpy or
anchorpy (issue 23: every command used to pay 2-4 s for torch). Each check runs in a fresh interpreter, since
other tests in this process may have imported torch already and would hide a regression."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from client.lazy_group import LazyGroup

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from click.testing import CliRunner
import client.cli
out = {"import": sorted(m for m in HEAVY if m in sys.modules)}
for args in ARGS:
    res = CliRunner().invoke(client.cli.main, args)
    out[" ".join(args)] = {"code": res.exit_code, "output": res.output[-300:],
                           "heavy": sorted(m for m in HEAVY if m in sys.modules)}
print(json.dumps(out))
"""
HEAVY = ["torch", "numpy", "anchorpy", "localnet.chain", "client.runner.engine", "client.training"]


def probe(*commands: list[str], heavy: list[str] = HEAVY) -> dict:
    """Import the CLI, then run `commands` one after another with CliRunner, all in a fresh interpreter; the
    heavy modules loaded after the import and after each command."""
    code = f"HEAVY = {heavy!r}\nARGS = {list(commands)!r}\n{PROBE}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_cli_and_version_load_nothing_heavy() -> None:
    out = probe(["--version"], ["--help"])
    assert out["import"] == []
    assert out["--version"]["code"] == 0 and "psyche" in out["--version"]["output"]
    assert out["--version"]["heavy"] == []
    assert out["--help"]["code"] == 0 and "run-client" in out["--help"]["output"]
    assert "torch" not in out["--help"]["heavy"]


def test_commands_that_do_not_train_leave_torch_out(tmp_path) -> None:
    wallet = str(tmp_path / "id.json")
    unreachable = "http://127.0.0.1:1"
    out = probe(["keygen", "-o", wallet], ["pubkey", wallet], ["balance", "-k", wallet, "-u", unreachable],
                ["config", "show", "-k", wallet], ["run", "--help"], ["run", "list", "-u", unreachable],
                ["run", "status", "some-run", "-u", unreachable], ["run-client", "--help"], ["dashboard", "--help"],
                ["localnet", "--help"], ["program", "--help"], ["data", "--help"], ["token", "--help"],
                ["rewards", "--help"])
    assert out["keygen -o " + wallet]["code"] == 0
    assert out[f"balance -k {wallet} -u {unreachable}"]["code"] == 8  # RPC unreachable, cleanly
    assert out[f"balance -k {wallet} -u {unreachable}"]["heavy"] == []  # a balance needs no numpy, no anchorpy
    assert out[f"run status some-run -u {unreachable}"]["code"] == 8
    for args, res in out.items():
        if args != "import":
            assert "torch" not in res["heavy"], (args, res)
            assert "client.runner.engine" not in res["heavy"], (args, res)


def test_one_shot_reads_skip_the_async_stack(tmp_path) -> None:
    """`balance` and `run status` read through coordinator_sdk.rpc_sync: asyncio, httpx and solana-py cost
    ~60 ms of imports, more than the reads (bench/cli_startup.py). Failing reads still exit 8 with one line."""
    wallet = str(tmp_path / "id.json")
    unreachable = "http://127.0.0.1:1"
    async_stack = ["asyncio", "httpx", "solana", "coordinator_sdk.model.machine", *HEAVY]
    out = probe(["keygen", "-o", wallet], ["balance", "-k", wallet, "-u", unreachable],
                ["run", "status", "some-run", "-u", unreachable], heavy=async_stack)
    for args in (f"balance -k {wallet} -u {unreachable}", f"run status some-run -u {unreachable}"):
        assert out[args]["code"] == 8, out[args]
        assert out[args]["output"].startswith(f"Error: no Solana JSON-RPC node answers at {unreachable} ("), out[args]
        assert out[args]["heavy"] == [], (args, out[args]["heavy"])


def test_lazy_group_lists_and_loads_on_demand() -> None:
    import click

    group = LazyGroup("g", lazy={"status": "client.commands.run_status:status", "bad": "client.cli_common:ExitCode"})
    ctx = click.Context(group)
    assert group.list_commands(ctx) == ["bad", "status"]
    assert group.get_command(ctx, "status").name == "status"
    assert group.get_command(ctx, "missing") is None
    with pytest.raises(TypeError, match="not a click command"):
        group.get_command(ctx, "bad")
