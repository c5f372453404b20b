"""`--with-compute-unit-price`, shared by every command that sends transactions (as on `solana` CLI
commands): a priority fee in micro-lamports per compute unit, or `auto` (a percentile of the fees recently
paid to write the same accounts, from getRecentPrioritizationFees). It sets the process-wide default the
SDK's TransactionSender uses, so every transaction the command sends carries it."""
from __future__ import annotations

import click


def _set(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:  # the SDK's default is already none: commands that read only skip importing the sender
        return
    from coordinator_sdk.sender import parse_unit_price, set_default_unit_price

    try:
        set_default_unit_price(parse_unit_price(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


unit_price_option = click.option(
    "--with-compute-unit-price", "unit_price", envvar="PSYCHE_COMPUTE_UNIT_PRICE", default=None,
    metavar="MICROLAMPORTS", expose_value=False, callback=_set,
    help="Priority fee: micro-lamports per compute unit, or 'auto' (75th percentile of recent fees for the "
         "accounts written). Env PSYCHE_COMPUTE_UNIT_PRICE. Default: none.")
