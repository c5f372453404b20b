"""Shared fixtures. Tests that need clang skip (with the reason) where it is missing; CI installs it."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from programs.build import CFLAGS, INCLUDE, find_clang

REPO = Path(__file__).resolve().parent.parent


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
