"""`psyche config show`: the cluster, wallet and program ids a command would use here, and where each came
from (flag, environment, psyche config file, Solana CLI config, default) — the first thing to look at when a
command reaches the wrong programs."""
from __future__ import annotations

import click

from client.cli_common import emit_json, keypair_option, output_option, url_option


@click.group("config")
def config() -> None:
    """Show the resolved cluster configuration."""


@config.command("show")
@url_option
@keypair_option
@output_option
def show(url: str, keypair_path: str, output: str) -> None:
    """Print url, keypair, coordinator_program and treasurer_program as every command resolves them."""
    from client.cluster_config import KEYS, from_context, psyche_config_path, solana_config_path

    cfg = from_context(install_ids=False)  # the flags the options' callbacks recorded
    values = dict(cfg.values, url=url, keypair=keypair_path)
    if output == "json":
        emit_json({k: {"value": values[k], "source": cfg.sources[k]} for k in KEYS}
                  | {"config_file": str(psyche_config_path()), "solana_config_file": str(solana_config_path())})
        return
    for k in KEYS:
        click.echo(f"{k:<20} {values[k]:<46} ({cfg.sources[k]})")
