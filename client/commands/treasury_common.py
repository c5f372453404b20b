"""What the token and rewards commands share: running an SDK coroutine with one-line failures, exact token
amounts, and the localnet-only guard. The wording and exit codes come from client.errors (one policy)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from client.cli_chain import chain_errors
from client.errors import CommandFailed, ExitCode, parse_token_amount
from client.interrupts import run_async

if TYPE_CHECKING:
    from solders.pubkey import Pubkey

T = TypeVar("T")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def run_sdk(work: Callable[[], Awaitable[T]], wallet: Pubkey | None = None) -> T:
    """Run an SDK coroutine; RPC, run, program and wallet failures become client.errors' one line and exit
    code (`wallet`, the payer, is named in "has no SOL" failures)."""
    with chain_errors(wallet):
        return run_async(work())


def require_localnet(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOCAL_HOSTS:
        raise CommandFailed(f"`psyche token {what}` only runs against a local validator (127.0.0.1/localhost); "
                            f"refusing {url}", ExitCode.USAGE)


def parse_amount(amount: str, decimals: int) -> int:
    """A token amount ("12.5") as exact base units; see client.errors.parse_token_amount for what is refused."""
    return parse_token_amount(amount, decimals)
