"""The `psyche` command line. Each command group lives in its own module under `client.commands`;
only commands that work are registered here."""
from __future__ import annotations

import sys

import click

from client.cli_common import run_main
from client.commands import program_deploy  # noqa: F401  (adds deploy/upgrade/show/... to `program`)
from client.commands.config import config
from client.commands.dashboard import dashboard
from client.commands.data import data
from client.commands.program import program
from client.commands.run import run
from client.commands.run_client import run_client
from client.commands.token import token
from client.commands.treasury import fund, rewards
from client.commands.wallet import airdrop, balance, keygen, pubkey
from localnet.cli import localnet


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="psyche-py", prog_name="psyche")
def main() -> None:
    """Psyche: decentralized training coordinated by a Solana program."""


run.add_command(fund)  # `psyche run fund ID AMOUNT` (client/commands/treasury.py)
for command in (program, localnet, keygen, pubkey, airdrop, balance, data, run_client, run, token, rewards, dashboard,
                config):
    main.add_command(command)


def entry() -> None:
    """The `psyche` console script: the group run so that no traceback reaches a user."""
    sys.exit(run_main(main))


if __name__ == "__main__":
    entry()
