"""Validator-grade deploy (DeployWithMaxDataLen, solders 0.29 in the tools venv) of every committed .so."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from programs.build import DEPLOY, programs

REPO = Path(__file__).resolve().parents[2]
TOOLS_PY = REPO / ".venv-deploycheck" / "bin" / "python"
SCRIPT = REPO / "programs" / "deploycheck.py"


def _run(*files: Path) -> tuple[int, list[dict]]:
    if not TOOLS_PY.exists():
        pytest.skip("the tools venv .venv-deploycheck is missing: run scripts/setup.sh")
    res = subprocess.run([str(TOOLS_PY), str(SCRIPT), *map(str, files)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.stderr == "" or res.returncode in (0, 1), res.stderr
    return res.returncode, [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def test_committed_programs_deploy_as_new_programs() -> None:
    rc, results = _run(*(DEPLOY / f"{name}.so" for name in programs()))
    assert rc == 0, results
    for r in results:
        assert r["deployed"] and r["invoked"], r


def test_unknown_syscall_fails_the_real_deploy(tmp_path: Path) -> None:
    elf = (DEPLOY / "hello.so").read_bytes()
    i = elf.index(b"sol_sha256\0")
    bad = tmp_path / "bad.so"
    bad.write_bytes(elf[:i] + b"sol_shaXYZ\0" + elf[i + 11:])
    rc, (result,) = _run(bad)
    assert rc == 1 and not result["deployed"]
    assert any("Unresolved symbol (sol_shaXYZ)" in line for line in result["logs"])
