"""`psyche program ...`: build the on-chain programs from C source."""
from __future__ import annotations

from pathlib import Path

import click


@click.group()
def program() -> None:
    """Build and inspect the on-chain programs."""


@program.command()
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the .so files here instead of programs/deploy/.")
@click.option("--check", is_flag=True, help="Build into a temporary dir and compare with the committed .so.")
def build(out_dir: Path | None, check: bool) -> None:
    """Compile every program with clang (BPF) and link it into an SBF .so with our linker."""
    from programs.build import BuildError, build_all, check_committed

    try:
        if check:
            diffs = check_committed()
            for name, same in diffs.items():
                click.echo(f"{name}: {'identical' if same else 'DIFFERS'}")
            if not all(diffs.values()):
                raise click.ClickException("rebuilt programs differ from the committed .so files")
            return
        for name, path in build_all(out_dir).items():
            click.echo(f"built {name}: {path} ({path.stat().st_size} bytes)")
    except BuildError as e:
        raise click.ClickException(str(e)) from e
