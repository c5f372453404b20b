"""The `psyche` command line. Each command group lives in its own module under `client.commands`;
only commands that work are registered here."""
from __future__ import annotations

import sys

import click

from client.cli_common import run_main
from client.lazy_group import LazyGroup

# Each command's module is imported only when that command runs (client/lazy_group.py): a command that does
# not train never pays for torch, and `psyche --version` for nothing but click.
COMMANDS = {
    "program": "client.commands.program_deploy:program",  # program.py's group, with deploy/upgrade/show/... added
    "localnet": "localnet.cli:localnet",
    "keygen": "client.commands.wallet:keygen",
    "pubkey": "client.commands.wallet:pubkey",
    "airdrop": "client.commands.wallet:airdrop",
    "balance": "client.commands.wallet:balance",
    "data": "client.commands.data:data",
    "run-client": "client.commands.run_client:run_client",
    "run": "client.commands.run:run",
    "token": "client.commands.token:token",
    "rewards": "client.commands.treasury:rewards",
    "dashboard": "client.commands.dashboard:dashboard",
    "config": "client.commands.config:config",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="psyche-py", prog_name="psyche")
def main() -> None:
    """Psyche: decentralized training coordinated by a Solana program."""


def entry() -> None:
    """The `psyche` console script: the group run so that no traceback reaches a user."""
    sys.exit(run_main(main))


if __name__ == "__main__":
    entry()
