"""Shared fixtures, the helper modules' import path and the markers each folder and file gets.

The suite is split by what a test needs to run (README "Tests"):
- tests/unit/: pure Python in this process: no localnet, no LiteSVM, no subprocess, no iroh endpoint;
- tests/program/: the on-chain programs (built by clang, linked, run in LiteSVM) and their reference model/fuzz;
- tests/integration/: a localnet server, `psyche` processes, iroh endpoints, a browser.
Helper modules (localnet_harness, run_client_helpers, ...) stay in tests/ and are imported by bare name: this
folder is put on sys.path here, so they import the same way from every sub-folder and from scripts.
Tests that need clang skip (with the reason) where it is missing; CI installs it."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from programs.build import CFLAGS, INCLUDE, find_clang

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# What an integration file needs beyond its folder (markers registered in pyproject.toml). `cluster` (a
# LocalCluster: localnet + deployed programs + psyche processes) implies `localnet`; `iroh`: P2P endpoints
# (run-clients included). `slow` stays on the tests themselves.
_FILE_MARKERS: dict[str, tuple[str, ...]] = {
    "test_chaos.py": ("cluster", "iroh"),
    "test_cli.py": (),
    "test_cli_errors.py": (),
    "test_cli_noise.py": (),
    "test_cli_startup.py": (),
    "test_cluster_cli.py": ("cluster",),
    "test_dashboard.py": ("cluster",),
    "test_dashboard_browser.py": ("cluster", "iroh", "browser"),
    "test_data_chain_authority.py": ("localnet",),
    "test_data_cli_serve.py": (),
    "test_data_prepare.py": (),
    "test_fresh_program_ids_e2e.py": ("cluster", "iroh"),
    "test_localnet_anchorpy.py": ("localnet",),
    "test_localnet_compat.py": ("localnet",),
    "test_localnet_durability.py": ("localnet",),
    "test_localnet_faults.py": ("localnet",),
    "test_localnet_hostile.py": ("localnet",),
    "test_localnet_protocol.py": ("localnet",),
    "test_localnet_rpc.py": ("localnet",),
    "test_interrupts.py": (),
    "test_loopback_only.py": (),
    "test_p2p_blobs.py": ("iroh",),
    "test_p2p_checkpoint.py": ("iroh",),
    "test_p2p_gossip.py": ("iroh",),
    "test_p2p_training.py": ("iroh",),
    "test_p2p_training_demo.py": ("iroh",),
    "test_paused_status.py": ("cluster",),
    "test_program_deploy.py": ("localnet",),
    "test_run_cli.py": ("cluster",),
    "test_run_client_cheats.py": ("cluster", "iroh"),
    "test_run_client_e2e.py": ("cluster", "iroh"),
    "test_run_client_hostile.py": ("cluster", "iroh"),
    "test_runner_inproc.py": ("iroh",),
    "test_runner_sync.py": ("iroh",),
    "test_runner_units.py": ("iroh",),
    "test_runner_verify.py": ("iroh",),
    "test_sdk_coordinator_client.py": ("localnet",),
    "test_sdk_transport.py": ("localnet",),
    "test_sender_landing.py": ("localnet",),
    "test_sender_resend.py": ("cluster",),
    "test_swarm.py": ("cluster", "iroh"),
    "test_treasurer_localnet.py": ("localnet",),
    "test_wallet_cli.py": ("localnet",),
}
_FOLDERS = ("unit", "program", "integration")
# Measured seconds of the tests that take more than a couple (setup + call + teardown, 4 workers on 2 cores):
# the longest start first, so the suite's wall time is not its last-scheduled long test. Rewritten by a run
# with PSYCHE_TEST_DURATIONS=write (scripts/test.sh's header says how); a test missing from it keeps its place.
_DURATIONS_FILE = TESTS / "durations.json"
_KEEP_ABOVE_S = 2.0
_measured: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    """A short base for tmp paths unless one is given: tests put checkpoint references (paths) on chain, which
    holds at most 127 bytes, and pytest's default base plus xdist's popen-gwN/ pushes them past it. Set on the
    controller only; xdist workers get <base>/popen-gwN."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        import tempfile

        config.option.basetemp = tempfile.mkdtemp(prefix="pt.", dir="/tmp")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its folder and, for integration files, what it starts; a test file outside the
    three folders, or an integration file missing from the table, is an error (so `-m` selections stay true)."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        folder = path.parent.name
        if path.parent.parent != TESTS or folder not in _FOLDERS:
            raise pytest.UsageError(f"{path}: test files live in tests/unit, tests/program or tests/integration")
        item.add_marker(getattr(pytest.mark, folder))
        if folder == "integration":
            if path.name not in _FILE_MARKERS:
                raise pytest.UsageError(f"{path.name}: add it to _FILE_MARKERS in tests/conftest.py")
            extra = set(_FILE_MARKERS[path.name])
            if "cluster" in extra:
                extra.add("localnet")
            for name in sorted(extra):
                item.add_marker(getattr(pytest.mark, name))
    known = json.loads(_DURATIONS_FILE.read_text()) if _DURATIONS_FILE.exists() else {}
    items.sort(key=lambda it: -float(known.get(it.nodeid, 0.0)))  # stable: the rest keep pytest's order


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up each test's phases (on the controller, from every worker's reports) for PSYCHE_TEST_DURATIONS."""
    if os.environ.get("PSYCHE_TEST_DURATIONS") == "write":
        _measured[report.nodeid] = _measured.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Merge what this run measured into the file: a run of a few tests rewrites their figures only."""
    if os.environ.get("PSYCHE_TEST_DURATIONS") != "write" or hasattr(session.config, "workerinput"):
        return
    known = json.loads(_DURATIONS_FILE.read_text()) if _DURATIONS_FILE.exists() else {}
    for nodeid, seconds in _measured.items():
        if seconds > _KEEP_ABOVE_S:
            known[nodeid] = round(seconds, 1)
        else:
            known.pop(nodeid, None)
    _DURATIONS_FILE.write_text(json.dumps(dict(sorted(known.items(), key=lambda kv: -kv[1])), indent=0) + "\n")


@pytest.fixture(scope="session")
def clang() -> str:
    path = find_clang()
    if path is None:
        pytest.skip("clang is not installed here (scripts/setup.sh installs it with apt when run as root)")
    return path


@pytest.fixture
def compile_c(clang: str, tmp_path: Path) -> Callable[..., tuple[str, bytes]]:
    """Compile a C snippet to a BPF object with the project's flags (plus extra ones); (name, bytes)."""
    import subprocess

    def _compile(source: str, name: str = "snippet", extra: tuple[str, ...] = ()) -> tuple[str, bytes]:
        src = tmp_path / f"{name}.c"
        src.write_text(source)
        out = tmp_path / f"{name}.o"
        flags = [f for f in CFLAGS if f != "-Werror"]
        res = subprocess.run([clang, *flags, *extra, "-I", str(INCLUDE), "-c", str(src), "-o", str(out)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stderr
        return f"{name}.o", out.read_bytes()

    return _compile
