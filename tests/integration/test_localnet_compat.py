"""Compatibility suite: real third-party clients drive one localnet and every call must pass their own
response validation: solana-py (the project's pin, and the newest release in .venv-rpccheck), and the JS
SDKs @solana/web3.js 1.x and @solana/kit (tests/js, pinned by its package-lock.json). Subscriptions
included. scripts/setup.sh installs the tools venv and the npm packages."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import localnet_fixture
import pytest
from localnet_harness import Localnet

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
NEWEST_PY = REPO / ".venv-rpccheck" / "bin" / "python"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compat")
    net = Localnet(tmp / "ledger")
    try:
        fixture = localnet_fixture.build(net.url)
        path = tmp / "fixture.json"
        path.write_text(json.dumps(fixture))
        yield net, path
    finally:
        net.stop()


def _run(cmd: list[str], cwd: Path = REPO) -> dict:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=180)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and lines, f"{cmd[0]} failed: {out.stderr[-3000:]}"
    return json.loads(lines[-1])


def _assert_all_pass(sdk: str, results: dict, at_least: int) -> None:
    failed = {k: v for k, v in results.items() if v != "ok"}
    print(f"{sdk}: {len(results) - len(failed)}/{len(results)} calls pass")
    assert not failed, f"{sdk} calls failing: {json.dumps(failed, indent=1)}"
    assert len(results) >= at_least, f"{sdk}: only {len(results)} calls ran"


def test_solana_py_pinned(world) -> None:
    net, fixture = world
    _assert_all_pass("solana-py (pin)", _run([sys.executable, "tests/rpc_compat_py.py", net.url, net.ws_url,
                                               str(fixture)]), 30)


def test_solana_py_newest(world) -> None:
    if not NEWEST_PY.exists():
        pytest.skip("the tools venv .venv-rpccheck is missing: run scripts/setup.sh")
    net, fixture = world
    _assert_all_pass("solana-py (newest)", _run([str(NEWEST_PY), "tests/rpc_compat_py.py", net.url, net.ws_url,
                                                  str(fixture)]), 33)


def test_web3js_and_kit(world) -> None:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "@solana" / "kit").exists():
        pytest.skip("Node or tests/js/node_modules is missing: run scripts/setup.sh")
    net, fixture = world
    results = _run([node, "compat.mjs", net.url, net.ws_url, str(fixture)], cwd=JS_DIR)
    _assert_all_pass("@solana/web3.js", results["web3.js"], 66)
    _assert_all_pass("@solana/kit", results["kit"], 50)
