"""`psyche program ...`: build the on-chain programs from C source."""
from __future__ import annotations

from pathlib import Path

import click

from client.cli_common import CommandFailed, emit_json, output_option


@click.group()
def program() -> None:
    """Build and inspect the on-chain programs."""


@program.command()
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the .so files here instead of programs/deploy/.")
@click.option("--check", is_flag=True, help="Build into a temporary dir and compare with the committed .so.")
@output_option
def build(out_dir: Path | None, check: bool, output: str) -> None:
    """Compile every program with clang (BPF) and link it into an SBF .so with our linker."""
    from programs.build import BuildError, build_all, check_committed

    try:
        if check:
            diffs = check_committed()
            if output == "json":
                emit_json({name: {"identical": same} for name, same in diffs.items()})
            else:
                for name, same in diffs.items():
                    click.echo(f"{name}: {'identical' if same else 'DIFFERS'}")
            if not all(diffs.values()):
                raise CommandFailed("rebuilt programs differ from the committed .so files")
            return
        built = build_all(out_dir)
    except BuildError as e:
        raise CommandFailed(str(e)) from None
    if output == "json":
        emit_json({name: {"path": str(path), "bytes": path.stat().st_size} for name, path in built.items()})
        return
    for name, path in built.items():
        click.echo(f"built {name}: {path} ({path.stat().st_size} bytes)")
