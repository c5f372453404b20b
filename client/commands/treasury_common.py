"""What the token and rewards commands share: running an SDK coroutine with one-line failures, exact token
amounts, and the localnet-only guard."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import urlsplit

import click

from client.cli_common import CommandFailed, ExitCode
from coordinator_sdk.client import RunNotFound
from coordinator_sdk.program_errors import TransactionFailed
from coordinator_sdk.spl_token import NotATokenAccount

T = TypeVar("T")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def run_sdk(work: Callable[[], Awaitable[T]]) -> T:
    """Run an SDK coroutine; RPC, run and program failures become one line with a distinct exit code."""
    try:
        return asyncio.run(work())
    except RunNotFound as e:
        raise CommandFailed(str(e), ExitCode.RUN_NOT_FOUND) from None
    except ConnectionError as e:
        raise CommandFailed(f"no Solana JSON-RPC node answers: {e}", ExitCode.RPC_UNREACHABLE) from None
    except TransactionFailed as e:
        raise CommandFailed(str(e).splitlines()[0]) from None
    except NotATokenAccount as e:
        raise CommandFailed(f"not an SPL Token account: {e}") from None


def require_localnet(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOCAL_HOSTS:
        raise CommandFailed(f"`psyche token {what}` only runs against a local validator (127.0.0.1/localhost); "
                            f"refusing {url}", ExitCode.USAGE)


def parse_amount(amount: str, decimals: int) -> int:
    """A token amount ("12.5") as base units, exactly; refuses more decimals than the mint has."""
    try:
        units = Decimal(amount) * (10**decimals)
    except InvalidOperation:
        raise click.BadParameter(f"{amount!r} is not a number of tokens") from None
    if units <= 0 or units != units.to_integral_value():
        raise click.BadParameter(f"{amount} is not a positive amount with at most {decimals} decimals")
    return int(units)
