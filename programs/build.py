"""Build every on-chain program: each folder under programs/ holding .c files is one program.

Deterministic by construction: sources compile in sorted order from inside their folder (no absolute
paths reach the objects), the linker emits no timestamps or symbol tables, and the clang version used
for the committed .so files is recorded in deploy/toolchain.txt so a rebuild can be compared byte for byte.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from programs.sbf import LinkError, link

ROOT = Path(__file__).parent
INCLUDE = ROOT / "include"
DEPLOY = ROOT / "deploy"
TOOLCHAIN_FILE = DEPLOY / "toolchain.txt"
CFLAGS = ["-target", "bpf", "-mcpu=v2", "-O2", "-ffreestanding", "-fno-builtin", "-fno-stack-protector",
          "-Wall", "-Wextra", "-Werror", "-std=c11"]
_SKIP_DIRS = {"include", "deploy", "sbf", "__pycache__"}


class BuildError(Exception):
    """Compiling or linking a program failed; the message has the compiler's or linker's words."""


def programs() -> dict[str, list[Path]]:
    """Program name -> its C sources, sorted."""
    out = {}
    for d in sorted(p for p in ROOT.iterdir() if p.is_dir() and p.name not in _SKIP_DIRS):
        sources = sorted(d.glob("*.c"))
        if sources:
            out[d.name] = sources
    return out


def find_clang() -> str | None:
    return shutil.which("clang")


def clang_version(clang: str | None = None) -> str | None:
    clang = clang or find_clang()
    if clang is None:
        return None
    first = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False).stdout
    return first.splitlines()[0].strip() if first else None


def compile_object(source: Path, out: Path, clang: str, extra: list[str] | None = None) -> None:
    cmd = [clang, *CFLAGS, *(extra or []), "-I", str(INCLUDE), "-c", source.name, "-o", str(out)]
    res = subprocess.run(cmd, cwd=source.parent, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BuildError(f"clang failed on {source.parent.name}/{source.name}:\n{res.stderr.strip()}")


def build_program(name: str, sources: list[Path], clang: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix=f"sbf-{name}-") as tmp:
        objects = []
        for src in sources:
            obj = Path(tmp) / f"{src.stem}.o"
            compile_object(src, obj, clang)
            objects.append((f"{name}/{src.stem}.o", obj.read_bytes()))
        try:
            return link(objects)
        except LinkError as e:
            raise BuildError(f"linking {name} failed: {e}") from e


def build_all(out_dir: Path | None = None) -> dict[str, Path]:
    """Build every program into out_dir (default: the committed programs/deploy/)."""
    clang = find_clang()
    if clang is None:
        raise BuildError("clang not found: install it (Debian: apt-get install clang) to build programs")
    out_dir = out_dir or DEPLOY
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for name, sources in programs().items():
        path = out_dir / f"{name}.so"
        path.write_bytes(build_program(name, sources, clang))
        built[name] = path
    (out_dir / TOOLCHAIN_FILE.name).write_text(f"{clang_version(clang)}\n")
    return built


def check_committed() -> dict[str, bool]:
    """Rebuild into a temp dir; per program, whether the bytes equal the committed .so."""
    with tempfile.TemporaryDirectory(prefix="sbf-check-") as tmp:
        built = build_all(Path(tmp))
        return {name: (DEPLOY / f"{name}.so").exists() and path.read_bytes() == (DEPLOY / f"{name}.so").read_bytes()
                for name, path in built.items()}


def committed_toolchain() -> str | None:
    return TOOLCHAIN_FILE.read_text().strip() if TOOLCHAIN_FILE.exists() else None
