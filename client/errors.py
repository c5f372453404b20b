"""The one error policy of `psyche`: which failure gets which exit code, and how it reads as one line.

Why one module: the exit codes are an interface (scripts and supervisors branch on them, the README
documents them), and the same failure (a corrupt keypair file, an unfunded wallet, a program error) used to
read differently and exit differently depending on which command noticed it. Every command, the runner and
`run_main` ask `describe` / `failure_for`, so a failure is worded and numbered in one place.

Only click and the standard library are imported at the top: `psyche --help` must stay fast and commands that
do not train must not pull in torch; httpx, solana-py and coordinator_sdk are imported where they are needed."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from solders.pubkey import Pubkey

U64_MAX = 2**64 - 1


class ExitCode:
    """Distinct exit codes of `psyche` commands (documented in the README)."""
    OK = 0
    ERROR = 1  # anything not listed below
    USAGE = 2  # click's code for bad arguments
    RUN_NOT_FOUND = 3
    VERSION_MISMATCH = 4
    MODEL_UNSUPPORTED = 5
    DEVICE_UNAVAILABLE = 6
    REMOVED_FROM_RUN = 7  # dropped, kicked or ejected by the coordinator
    RPC_UNREACHABLE = 8
    WALLET = 9  # missing/corrupt keypair file (as -k or as an argument), or a wallet without SOL
    ALREADY_RUNNING = 10  # another live process already runs this wallet (or P2P identity) in the run
    INTERRUPTED = 130  # SIGINT outside a command that handles it itself


class CommandFailed(click.ClickException):
    """A failure the user can act on: one line, and a distinct exit code."""

    def __init__(self, message: str, exit_code: int = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exception_text(exc: BaseException) -> str:
    """An exception's message, or its type name when the message is empty (`TimeoutError()` has none, and
    "request failed: " with nothing after it tells a user nothing)."""
    return str(exc).strip() or type(exc).__name__


def first_line(text: str) -> str:
    """The first line of `text`: SDK errors append program logs below the line that names the error."""
    return text.splitlines()[0] if text else text


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, with "…" when cut: a log line cut
    mid-word ("already witnessed thi") reads as a different message."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 1)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:(") + "…"


def error_line(exc: BaseException, limit: int | None = None) -> str:
    """One line naming `exc` for a log event: a program error in full, by its name ("WitnessAlreadyPosted:
    this witness already witnessed this round (code 6007)"), never cut; anything else its first line (type
    name when empty), shortened at a word boundary to `limit` when given."""
    from coordinator_sdk.program_errors import ProgramError

    if isinstance(exc, ProgramError):
        return f"{exc.error_name}: {exc.error_msg or 'program error'} (code {exc.code})"
    line = first_line(exception_text(exc))
    return line if limit is None else shorten(line, limit)


# ---- SPL Token program errors (spl-token's TokenError, in declaration order) ---------------------------
SPL_TOKEN_ERRORS = (
    "NotRentExempt", "InsufficientFunds", "InvalidMint", "MintMismatch", "OwnerMismatch", "FixedSupply",
    "AlreadyInUse", "InvalidNumberOfProvidedSigners", "InvalidNumberOfRequiredSigners", "UninitializedState",
    "NativeNotSupported", "NonNativeHasBalance", "InvalidInstruction", "InvalidState", "Overflow",
    "AuthorityTypeNotSupported", "MintCannotFreeze", "AccountFrozen", "MintDecimalsMismatch",
    "NonNativeNotSupported")
SPL_TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"


def _custom_code(err: object) -> tuple[int, int] | None:
    """(instruction index, custom code) of a `{"InstructionError": [i, {"Custom": n}]}` error, else None."""
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and isinstance(inner.get("Custom"), int):
            return int(index), int(inner["Custom"])
    return None


def spl_token_error(err: object, logs: list[str]) -> str | None:
    """"SPL token error InsufficientFunds (code 1)" when the SPL Token program failed the transaction.

    The bare `{'Custom': 1}` the runtime reports does not say which program refused; the logs do."""
    custom = _custom_code(err)
    if custom is None or not any(SPL_TOKEN_PROGRAM in line and "failed" in line for line in logs):
        return None
    index, code = custom
    name = SPL_TOKEN_ERRORS[code] if 0 <= code < len(SPL_TOKEN_ERRORS) else f"error {code}"
    hint = " (insufficient funds: the source token account holds less than asked)" if code == 1 else ""
    return f"SPL token error {name} (code {code}, instruction {index}){hint}"


# ---- transport failures ------------------------------------------------------------------------------
def _chain(exc: BaseException) -> list[BaseException]:
    links = [exc]
    while links[-1].__cause__ is not None and len(links) < 16:
        links.append(links[-1].__cause__)
    return links


def rpc_failure(url: str, timeout: float, exc: BaseException) -> CommandFailed:
    """One line for a transport failure talking to `url`: refused, timed out, or not a JSON-RPC node. Both
    stacks' failures are recognised: httpx's (async commands) and `coordinator_sdk.rpc_sync`'s (one-shot
    reads, which must not pay for importing httpx)."""
    from coordinator_sdk import rpc_sync

    links = _chain(exc.last if isinstance(exc, rpc_sync.AllEndpointsFailedSync) else exc)
    connect_timeout: list[type[BaseException]] = [rpc_sync.RpcConnectTimeout]
    refused: list[type[BaseException]] = [ConnectionError]
    timeouts: list[type[BaseException]] = [TimeoutError]
    if any(type(e).__module__.startswith("httpx") for e in links):
        import httpx

        connect_timeout.append(httpx.ConnectTimeout)
        refused.append(httpx.ConnectError)
        timeouts.append(httpx.TimeoutException)

    def find(kinds: list[type[BaseException]]) -> BaseException | None:
        return next((e for e in links if isinstance(e, tuple(kinds))), None)

    status = next((_http_status(e) for e in links if _http_status(e) is not None), None)
    if find(connect_timeout):
        msg = f"could not connect to the RPC node at {url} within {timeout:g} s (timeout)"
    elif find(timeouts):
        msg = f"the RPC node at {url} accepted the connection but did not answer within {timeout:g} s (timeout)"
    elif (no_answer := find(refused)) is not None:
        reason = str(no_answer).strip() or "connection refused"
        msg = f"no Solana JSON-RPC node answers at {url} ({reason})"
    elif status is not None:
        msg = f"{url} is not a Solana JSON-RPC node (HTTP {status})"
    else:
        cause = links[-1]
        msg = f"the RPC node at {url} failed: {type(cause).__name__}: {exception_text(cause)}"
    return CommandFailed(msg, ExitCode.RPC_UNREACHABLE)


def _http_status(e: BaseException) -> int | None:
    """The HTTP status of a non-200 answer, from either stack's exception."""
    from coordinator_sdk.rpc_sync import RpcHttpStatus

    if isinstance(e, RpcHttpStatus):
        return e.status
    if type(e).__name__ == "HTTPStatusError" and type(e).__module__.startswith("httpx"):
        return int(e.response.status_code)  # type: ignore[attr-defined]
    return None


def _funding_hint(wallet: Pubkey | None) -> tuple[str, str]:
    who = f"wallet {wallet}" if wallet is not None else "the paying wallet"
    target = str(wallet) if wallet is not None else "WALLET_PUBKEY"
    return who, f" (fund it: psyche airdrop 1 {target})"


# ---- the mapping -------------------------------------------------------------------------------------
def chain_failure(exc: BaseException, wallet: Pubkey | None = None) -> CommandFailed | None:
    """The one-line failure for an error from coordinator_sdk, or None when `exc` is not one of them.

    Program errors keep their program name (`WitnessNotElected: ...`); "AccountNotFound" for the fee payer
    means the wallet was never funded, which is what the user needs to hear; an SPL Token failure is named
    (`{'Custom': 1}` alone says nothing)."""
    from coordinator_sdk.client import RunNotFound
    from coordinator_sdk.program_errors import ProgramError, TransactionFailed
    from coordinator_sdk.rpc_pool import AllEndpointsFailed
    from coordinator_sdk.spl_token import NotATokenAccount

    if isinstance(exc, RunNotFound):
        return CommandFailed(first_line(exception_text(exc)), ExitCode.RUN_NOT_FOUND)
    if isinstance(exc, AllEndpointsFailed):
        return CommandFailed(first_line(exception_text(exc)), ExitCode.RPC_UNREACHABLE)
    if isinstance(exc, NotATokenAccount):
        return CommandFailed(f"not an SPL Token account: {exception_text(exc)}")
    if isinstance(exc, ProgramError):
        return CommandFailed(f"{exc.error_name}: {exc.error_msg or 'program error'} (code {exc.code},"
                             f" instruction {exc.instruction_index})")
    if isinstance(exc, TransactionFailed):
        err = next(iter(exc.err), None) if isinstance(exc.err, dict) else exc.err  # "X" or {"X": detail}
        who, fund = _funding_hint(wallet)
        if err == "AccountNotFound":
            return CommandFailed(f"{who} has no SOL{fund}", ExitCode.WALLET)
        if err in ("InsufficientFundsForFee", "InsufficientFundsForRent"):
            return CommandFailed(f"{who} has too little SOL for this transaction{fund}", ExitCode.WALLET)
        if (token := spl_token_error(exc.err, exc.logs)) is not None:
            return CommandFailed(token)
        return CommandFailed(first_line(exception_text(exc)))
    return None


def failure_for(exc: BaseException, wallet: Pubkey | None = None) -> CommandFailed | None:
    """`exc` as a CommandFailed when the policy knows it (already one, SDK/program errors, keypair files,
    RPC transport failures), else None (an unexpected error: the caller decides)."""
    from coordinator_sdk.keypair_file import KeypairFileError

    if isinstance(exc, CommandFailed):
        return exc
    if isinstance(exc, KeypairFileError):
        return CommandFailed(f"wallet: {exception_text(exc)}", ExitCode.WALLET)
    if (failure := chain_failure(exc, wallet)) is not None:
        return failure
    if isinstance(exc, ConnectionError | TimeoutError):
        return CommandFailed(f"no Solana JSON-RPC node answers: {exception_text(exc)}", ExitCode.RPC_UNREACHABLE)
    return None


def describe(exc: BaseException, wallet: Pubkey | None = None) -> tuple[str, int]:
    """(one-line message, exit code) for any exception a command can end with: click usage errors keep
    click's wording and code 2, Ctrl-C is 130, known failures get their own code, anything else exit 1 with
    its type name (an unexpected error should be recognisable in a bug report)."""
    if isinstance(exc, KeyboardInterrupt | click.exceptions.Abort):
        return "interrupted", ExitCode.INTERRUPTED
    if isinstance(exc, click.ClickException) and not isinstance(exc, CommandFailed):
        return exc.format_message(), exc.exit_code
    if (failure := failure_for(exc, wallet)) is not None:
        return failure.format_message(), failure.exit_code
    return f"{type(exc).__name__}: {first_line(exception_text(exc))}", ExitCode.ERROR


def parse_token_amount(amount: str, decimals: int, what: str = "tokens") -> int:
    """A token amount ("12.5") as base units, exactly. Refuses, naming the rule (click.BadParameter, exit 2):
    not a number, nan/inf, zero or negative, more decimals than the mint has, more than a u64 of base units
    (the SPL Token program's amount field)."""
    from decimal import Decimal, InvalidOperation, localcontext

    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise click.BadParameter(f"{amount!r} is not a number of {what}") from None
    if not value.is_finite():
        raise click.BadParameter(f"{amount!r} is not a number of {what} (nan and infinity are not amounts)")
    if value <= 0:
        raise click.BadParameter(f"{amount} is not a positive amount of {what}")
    if value.adjusted() + decimals > 20:  # far past 20 digits: no need to compute it
        raise click.BadParameter(f"{amount} {what} is more than the u64 maximum of {U64_MAX} base units "
                                 f"({decimals} decimals)")
    with localcontext() as ctx:
        ctx.prec = len(value.as_tuple().digits) + 32  # exact: scaling must not round away a digit
        units = value.scaleb(decimals)
    if units != units.to_integral_value():
        raise click.BadParameter(f"{amount} has more decimals than the mint's {decimals}")
    if units > U64_MAX:
        raise click.BadParameter(f"{amount} {what} is more than the u64 maximum of {U64_MAX} base units "
                                 f"({decimals} decimals)")
    return int(units)
