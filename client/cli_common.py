"""Conventions every `psyche` command shares, so that a user who knows the Solana CLI is never surprised:
`-u/--url` with monikers, `--ws-url` derived the way validators do, `-k/--keypair` with `~` expanded and
the Solana default wallet, `--output json`, and one line (never a traceback) for every failure.

Exit codes and the wording of failures are one policy, owned by client.errors (re-exported here for the
commands that import them from this module)."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from solders.keypair import Keypair

from client.errors import CommandFailed as CommandFailed  # re-exported: the policy lives in client.errors
from client.errors import ExitCode as ExitCode
from client.errors import describe, failure_for
from coordinator_sdk.keypair_file import KeypairFileError, read_keypair

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WALLET = Path("~/.config/solana/id.json")
RUN_ID_MAX_BYTES = 32  # programs/coordinator/coordinator.h RUN_ID_MAX; the codec refuses longer ids
MONIKERS = {
    "localhost": "http://127.0.0.1:8899", "l": "http://127.0.0.1:8899",
    "devnet": "https://api.devnet.solana.com", "d": "https://api.devnet.solana.com",
    "testnet": "https://api.testnet.solana.com", "t": "https://api.testnet.solana.com",
    "mainnet-beta": "https://api.mainnet-beta.solana.com", "m": "https://api.mainnet-beta.solana.com",
}


def resolve_url(url: str) -> str:
    """An RPC URL from a moniker (`localhost`, `devnet`, `mainnet-beta`, ...) or a URL; `host:port` without a
    scheme means http, as the Solana CLI accepts."""
    url = url.strip()
    if url in MONIKERS:
        return MONIKERS[url]
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url!r} is not an http(s) RPC URL or one of {', '.join(sorted(MONIKERS))}")
    try:
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        raise click.BadParameter(f"{url!r} has an invalid port") from None
    return url


def derive_ws_url(rpc_url: str) -> str:
    """The websocket URL a validator serves beside RPC: ws(s) scheme, port + 1 when a port is given
    (solana-test-validator and our localnet listen there)."""
    parts = urlsplit(rpc_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    host = parts.hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port + 1}"
    return urlunsplit((scheme, netloc, parts.path or "", parts.query, ""))


def _url_callback(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """The URL by flag > PSYCHE_URL > psyche config > Solana CLI config > localhost (client.cluster_config);
    the program ids resolve (and become the SDK's defaults) at the same time."""
    from client.cluster_config import from_context

    return resolve_url(from_context(ctx, url=value).values["url"])


def _keypair_callback(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    from client.cluster_config import from_context

    return from_context(ctx, keypair=value, install_ids=False).values["keypair"]


def url_option(f: F) -> F:
    from client.cluster_config import program_options

    f = click.option("-u", "--url", default=None, callback=_url_callback, metavar="URL_OR_MONIKER",
                     help="JSON-RPC URL or moniker (localhost, devnet, mainnet-beta). Env PSYCHE_URL; default: "
                     "psyche config, Solana CLI config, localhost.")(f)
    return program_options(f)


def keypair_option(f: F) -> F:
    return click.option("-k", "--keypair", "keypair_path", default=None, callback=_keypair_callback,
                        metavar="KEYPAIR", help="Wallet keypair file (Solana CLI JSON). Env PSYCHE_KEYPAIR; "
                        "default: psyche config, Solana CLI config, ~/.config/solana/id.json.")(f)


def output_option(f: F) -> F:
    return click.option("--output", "output", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, envvar="PSYCHE_OUTPUT", help="Output format. Env PSYCHE_OUTPUT.")(f)


def load_wallet(path: str | Path) -> Keypair:
    """The wallet at `path` (`~` expanded), or a one-line failure naming the file and what is wrong."""
    p = Path(os.path.expanduser(str(path)))
    try:
        return read_keypair(p)
    except KeypairFileError as e:
        failure = failure_for(e)
        assert failure is not None
        if not p.exists():
            failure.message += " (create one with `psyche keygen -o FILE`)"
        raise failure from None


def validate_run_id(run_id: str) -> str:
    """`run_id` if the coordinator program can hold it: 1 to 32 UTF-8 bytes, printable, no whitespace (a
    NUL or trailing blank would read back as a different, padded id). Raises click.BadParameter (exit 2)
    naming the rule, so a bad id fails before any transaction is built."""
    size = len(run_id.encode("utf-8"))
    if size == 0:
        raise click.BadParameter("the run id is empty")
    if size > RUN_ID_MAX_BYTES:
        raise click.BadParameter(f"run id {run_id!r} is {size} bytes; the coordinator allows at most "
                                 f"{RUN_ID_MAX_BYTES} (UTF-8)")
    if any(ch.isspace() or not ch.isprintable() for ch in run_id):
        raise click.BadParameter(f"run id {run_id!r} holds whitespace or control characters")
    return run_id


def run_id_callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """click callback form of validate_run_id (None passes through for optional options)."""
    return None if value is None else validate_run_id(value)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def run_main(group: click.Group, argv: list[str] | None = None) -> int:
    """Run the CLI so that no traceback reaches a user: every failure leaves as the one line and exit code
    client.errors.describe gives it (set PSYCHE_DEBUG=1 for the traceback of an unexpected one)."""
    try:
        return group.main(args=argv, standalone_mode=False) or 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except BrokenPipeError:
        return ExitCode.OK
    except click.ClickException as e:
        e.show()  # click's own rendering: usage line and "Try --help" for usage errors
        return e.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort) as e:
        message, code = describe(e)
        click.echo(message, err=True)
        return code
    except Exception as e:  # the last line of defence: one line, never a traceback
        if os.environ.get("PSYCHE_DEBUG") and failure_for(e) is None:
            raise
        message, code = describe(e)
        click.echo(f"Error: {message}", err=True)
        return code
