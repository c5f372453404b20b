"""Token amounts are exact in both directions, and the localnet-only guard of `psyche token`."""
from __future__ import annotations

import click
import pytest

from client.cli_common import CommandFailed
from client.commands.treasury_common import parse_amount, require_localnet
from coordinator_sdk.spl_token import NotATokenAccount, decode_mint, decode_token_account, format_amount


@pytest.mark.parametrize("text,decimals,units", [("1.5", 6, 1_500_000), ("0.000001", 6, 1), ("7", 0, 7),
                                                 ("18446744073.709551615", 9, 2**64 - 1)])
def test_parse_amount_is_exact(text: str, decimals: int, units: int) -> None:
    assert parse_amount(text, decimals) == units
    shown = format_amount(units, decimals)
    assert parse_amount(shown, decimals) == units and len(shown.partition(".")[2]) == decimals


@pytest.mark.parametrize("text", ["0", "-1", "0.0000001", "abc", "1e-9"])
def test_parse_amount_refuses(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_amount(text, 6)


def test_localnet_guard() -> None:
    for url in ("http://127.0.0.1:8899", "http://localhost:1234"):
        require_localnet(url, "mint")
    for url in ("https://api.devnet.solana.com", "http://10.0.0.1:8899"):
        with pytest.raises(CommandFailed, match="only runs against a local validator"):
            require_localnet(url, "mint")


def test_layouts_refuse_wrong_sizes_and_uninitialized() -> None:
    with pytest.raises(NotATokenAccount, match="82 bytes"):
        decode_mint(bytes(81))
    with pytest.raises(NotATokenAccount, match="not initialized"):
        decode_mint(bytes(82))
    with pytest.raises(NotATokenAccount, match="not initialized"):
        decode_token_account(bytes(165))
