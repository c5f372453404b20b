"""Subcommands of the psyche CLI, one module per group."""
