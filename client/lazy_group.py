"""A click group whose commands are imported when they are invoked, not when `psyche` starts.

Every `psyche` command used to import every command module (and through them anchorpy, numpy, the localnet
and its LiteSVM), so `psyche --version` took as long as the heaviest command. Here a group names each
command as "module:attribute"; only the one a user runs (or all of them, for `--help`'s listing) is
imported. bench/cli_startup.py measures the effect and tests/test_cli_startup.py keeps torch out."""
from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """`lazy`: command name -> "package.module:attribute" of a click command, imported on first use."""

    def __init__(self, *args: object, lazy: dict[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attr = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)
