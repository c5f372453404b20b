"""The RPC client and chain-error wrappers every `psyche` command that talks to a cluster uses; how a
failure reads and exits is client.errors' policy.

Why: a dead node, a node that accepts and never answers, an unfunded wallet and a
program error all surface as different exception types from httpx, solana-py and coordinator_sdk; a user
should see what is wrong and what to do ("wallet X has no SOL"), with an exit code a script can branch on,
and never the stack of whichever library noticed first. solana-py and httpx are imported lazily so that
`psyche --help` stays fast."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from client.errors import CommandFailed, ExitCode, failure_for, rpc_failure

if TYPE_CHECKING:
    from solana.rpc.async_api import AsyncClient
    from solders.pubkey import Pubkey

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_RPC_TIMEOUT = 30.0


def rpc_timeout_option(f: F) -> F:
    return click.option("--rpc-timeout", "rpc_timeout", type=click.FloatRange(min=0, min_open=True),
                        default=DEFAULT_RPC_TIMEOUT, show_default=True, envvar="PSYCHE_RPC_TIMEOUT",
                        metavar="SECONDS", help="Give up on an RPC node that does not answer within this many "
                        "seconds. Env PSYCHE_RPC_TIMEOUT.")(f)


@asynccontextmanager
async def rpc_client(url: str, timeout: float = DEFAULT_RPC_TIMEOUT) -> AsyncIterator[AsyncClient]:
    """A solana-py client for `url` whose transport failures become `rpc_failure` lines."""
    import httpx
    from solana.exceptions import SolanaRpcException
    from solana.rpc.async_api import AsyncClient

    async with AsyncClient(url, timeout=timeout) as client:
        try:
            yield client
        except (SolanaRpcException, httpx.HTTPError, OSError, TimeoutError) as e:
            raise rpc_failure(url, timeout, e) from None


@contextmanager
def sync_reads(urls: str | list[str], timeout: float = DEFAULT_RPC_TIMEOUT, attempts: int = 1) -> Iterator[Any]:
    """A blocking `coordinator_sdk.rpc_sync.SyncRpc` for a one-shot read command (no asyncio, httpx or
    solana-py to import); its failures become the same lines and exit codes as the async commands'."""
    from coordinator_sdk.rpc_sync import AllEndpointsFailedSync, RpcBadAnswer, RpcCallError, SyncRpc

    url_list = [urls] if isinstance(urls, str) else list(urls)
    shown = ", ".join(url_list)
    try:
        yield SyncRpc(url_list, timeout, attempts)
    except (AllEndpointsFailedSync, RpcBadAnswer, OSError) as e:
        raise rpc_failure(shown, timeout, e) from None
    except RpcCallError as e:
        raise CommandFailed(f"the RPC node at {shown} refused the request: {e}", ExitCode.RPC_UNREACHABLE) from None


@contextmanager
def quiet_rpc_warnings() -> Iterator[None]:
    """Silence the RpcPool's per-attempt failover warnings for a one-shot command: when every attempt
    fails, `chain_errors` says so in one line, and four warnings above it would bury that line. Long-running
    commands (servers, run-client) keep the warnings: there a failover is news."""
    import logging

    rpc_log = logging.getLogger("coordinator_sdk.rpc")
    level = rpc_log.level
    rpc_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        rpc_log.setLevel(level)


@contextmanager
def chain_errors(wallet: Pubkey | None = None) -> Iterator[None]:
    """`with chain_errors(wallet.pubkey()):` around SDK calls: their failures leave as one line each."""
    try:
        yield
    except CommandFailed:
        raise
    except Exception as e:
        failure = failure_for(e, wallet)
        if failure is None:
            raise
        raise failure from None


async def require_program(pool: Any, program_id: Pubkey, what: str) -> None:
    """Fail in one line, before any transaction, when nothing executable lives at the configured program id:
    otherwise a wrong `--coordinator-program` would surface as the runtime's bare "ProgramAccountNotFound"
    (or, for a read, as a run that "does not exist")."""
    from client.cluster_config import ENV

    acc = (await pool.call(lambda c: c.get_account_info(program_id))).value
    if acc is None or not acc.executable:
        flag = f"--{what}-program"
        state = "no account" if acc is None else "an account that is not an executable program"
        raise CommandFailed(f"the {what} program id {program_id} holds {state} on this cluster: deploy it there "
                            f"or point {flag} / {ENV[what + '_program']} / the psyche config at where it is "
                            "(`psyche config show` prints what is used)", ExitCode.ERROR)
