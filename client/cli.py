"""The `psyche` command line. Each command group lives in its own module under `client.commands`;
only commands that work are registered here."""
from __future__ import annotations

import click

from client.commands.data import data
from client.commands.program import program


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="psyche-py", prog_name="psyche")
def main() -> None:
    """Psyche: decentralized training coordinated by a Solana program."""


main.add_command(program)
main.add_command(data)

if __name__ == "__main__":
    main()
