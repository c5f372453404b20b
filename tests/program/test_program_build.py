"""Reproducible, verifiable build: rebuilding every program from source gives the committed bytes."""
from __future__ import annotations

import pytest

from programs.build import DEPLOY, build_all, clang_version, committed_toolchain, programs


def test_every_program_has_a_committed_so() -> None:
    names = programs()
    assert "hello" in names
    for name in names:
        assert (DEPLOY / f"{name}.so").is_file(), f"programs/deploy/{name}.so is not committed"


def test_rebuild_is_byte_identical_to_committed(clang: str, tmp_path) -> None:
    want = committed_toolchain()
    have = clang_version(clang)
    if want != have:
        pytest.skip(f"the committed .so files were built with '{want}', this machine has '{have}': "
                    "byte equality is only defined for the same compiler")
    built = build_all(tmp_path)
    assert set(built) == set(programs())
    for name, path in built.items():
        assert path.read_bytes() == (DEPLOY / f"{name}.so").read_bytes(), f"{name}.so differs from the rebuild"


def test_build_reports_compiler_errors_by_file(clang: str, tmp_path) -> None:
    from programs.build import BuildError, compile_object

    src = tmp_path / "broken.c"
    src.write_text("uint64_t entrypoint(void) { return undeclared; }\n")
    with pytest.raises(BuildError, match="broken.c"):
        compile_object(src, tmp_path / "broken.o", clang)
