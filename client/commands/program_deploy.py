"""`psyche program deploy | upgrade | set-upgrade-authority | close | show | verify`: the programs on any
cluster through the upgradeable loader, as `solana program ...` does, so a user can run Psyche on devnet or
mainnet with program ids of their own; `verify` makes the C build a verifiable build (the deployed bytes
equal the .so rebuilt here, byte for byte)."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import click
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from client.cli_common import CommandFailed, emit_json, keypair_option, load_wallet, output_option, url_option
from client.commands.program import program
from client.commands.program_ops import DeployFailed, LoaderClient, Progress
from client.commands.treasury_common import run_sdk
from client.commands.wallet import resolve_pubkey
from coordinator_sdk import keypair_file as keys
from coordinator_sdk.rpc_pool import RpcPool
from programs import loader as ldr


def resolve_so(name: str) -> tuple[str, Path]:
    """(program name or '', .so path) for NAME: a program under programs/ or a path to a .so."""
    from programs.build import DEPLOY, programs

    if name in programs():
        return name, DEPLOY / f"{name}.so"
    path = Path(name).expanduser()
    if path.suffix == ".so" and path.is_file():
        return "", path
    raise click.BadParameter(f"{name!r} is neither a program under programs/ ({', '.join(programs())}) "
                             "nor an existing .so file", param_hint="NAME")


def _keypair(path: str, what: str) -> Keypair:
    try:
        return keys.read_keypair(Path(path).expanduser())
    except keys.KeypairFileError as e:
        raise click.BadParameter(f"{what}: {e}") from None


def _pubkey(value: str, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise click.BadParameter(f"{what} {value!r} is not a base-58 public key") from None


def _buffer(buffer_path: str | None, program_keypair: str | None, program_id: Pubkey) -> tuple[Keypair, Path]:
    """The buffer keypair, kept in a file so that an interrupted deploy resumes from its buffer when run
    again: --buffer FILE (created if absent), else <program keypair>.buffer.json, else one per program id."""
    if buffer_path:
        path = Path(buffer_path).expanduser()
    elif program_keypair:
        path = Path(program_keypair).expanduser().with_suffix(".buffer.json")
    else:
        path = Path(tempfile.gettempdir()) / f"psyche-buffer-{program_id}.json"
    try:
        return keys.load_or_create(path), path
    except keys.KeypairFileError as e:
        raise click.BadParameter(f"buffer keypair: {e}") from None


def _run(work):
    try:
        return run_sdk(work)
    except DeployFailed as e:
        raise CommandFailed(str(e)) from None


def _report(output: str, fields: dict) -> None:
    if output == "json":
        emit_json(fields)
    else:
        for k, v in fields.items():
            click.echo(f"{k}: {v}")


@program.command()
@click.argument("name")
@click.option("--program-keypair", required=True, help="Keypair file of the new program id.")
@click.option("--upgrade-authority", default=None, help="Keypair file of the upgrade authority (default: wallet).")
@click.option("--max-len", type=click.IntRange(1, 10 * 1024 * 1024 - ldr.PROGRAMDATA_META), default=None,
              help="Bytes reserved for the program, room for upgrades (default: twice the .so).")
@click.option("--buffer", "buffer_path", default=None,
              help="Buffer keypair file; an existing buffer resumes an interrupted deploy.")
@url_option
@keypair_option
@output_option
def deploy(name: str, program_keypair: str, upgrade_authority: str | None, max_len: int | None,
           buffer_path: str | None, url: str, keypair_path: str, output: str) -> None:
    """Deploy NAME (coordinator, treasurer, hello, or a .so path) at a new program id: buffer, Write chunks,
    DeployWithMaxDataLen."""
    _, so = resolve_so(name)
    elf = so.read_bytes()
    prog = _keypair(program_keypair, "--program-keypair")
    payer = load_wallet(keypair_path)
    authority = _keypair(upgrade_authority, "--upgrade-authority") if upgrade_authority else payer
    if max_len is not None and max_len < len(elf):
        raise click.BadParameter(f"{max_len} is smaller than the program ({len(elf)} bytes)", param_hint="--max-len")
    buffer, bpath = _buffer(buffer_path, program_keypair, prog.pubkey())
    progress = Progress()

    async def work() -> str:
        async with RpcPool([url]) as pool:
            return await LoaderClient(pool, payer, progress).deploy(prog, buffer, authority, elf,
                                                                    max_len or 2 * len(elf))

    sig = _run(work)
    bpath.unlink(missing_ok=True)  # the buffer was drained into the program: nothing left to resume
    _report(output, {"program_id": str(prog.pubkey()), "signature": sig, "bytes": len(elf),
                     "transactions": progress.transactions, "resent": progress.resent,
                     "chunks_written": progress.chunks_written,
                     "chunks_resumed": progress.chunks_skipped, "seconds": round(progress.seconds(), 2)})


@program.command()
@click.argument("name")
@click.option("--program-id", required=True, help="The deployed program to replace.")
@click.option("--upgrade-authority", default=None, help="Keypair file of the upgrade authority (default: wallet).")
@click.option("--buffer", "buffer_path", default=None, help="Buffer keypair file (resumes an interrupted upgrade).")
@url_option
@keypair_option
@output_option
def upgrade(name: str, program_id: str, upgrade_authority: str | None, buffer_path: str | None, url: str,
            keypair_path: str, output: str) -> None:
    """Replace the program at --program-id with NAME: a new buffer, then Upgrade."""
    _, so = resolve_so(name)
    elf = so.read_bytes()
    pid = _pubkey(program_id, "--program-id")
    payer = load_wallet(keypair_path)
    authority = _keypair(upgrade_authority, "--upgrade-authority") if upgrade_authority else payer
    buffer, bpath = _buffer(buffer_path, None, pid)
    progress = Progress()

    async def work() -> str:
        async with RpcPool([url]) as pool:
            return await LoaderClient(pool, payer, progress).upgrade(pid, buffer, authority, elf)

    sig = _run(work)
    bpath.unlink(missing_ok=True)
    _report(output, {"program_id": str(pid), "signature": sig, "transactions": progress.transactions,
                     "seconds": round(progress.seconds(), 2)})


@program.command("set-upgrade-authority")
@click.argument("address")
@click.option("--new-upgrade-authority", default=None,
              help="Keypair file (it signs: SetAuthorityChecked) or public key of the new authority.")
@click.option("--final", is_flag=True, help="Make the program immutable (no upgrade authority).")
@click.option("--upgrade-authority", default=None, help="Keypair file of the current authority (default: wallet).")
@url_option
@keypair_option
@output_option
def set_upgrade_authority(address: str, new_upgrade_authority: str | None, final: bool, upgrade_authority: str | None,
                          url: str, keypair_path: str, output: str) -> None:
    """Change the upgrade authority of a program (ADDRESS = program id) or of a buffer."""
    if final == (new_upgrade_authority is not None):
        raise click.UsageError("give exactly one of --new-upgrade-authority and --final")
    key = _pubkey(address, "ADDRESS")
    payer = load_wallet(keypair_path)
    current = _keypair(upgrade_authority, "--upgrade-authority") if upgrade_authority else payer
    new_kp = None
    if new_upgrade_authority is not None and Path(new_upgrade_authority).expanduser().exists():
        new_kp = _keypair(new_upgrade_authority, "--new-upgrade-authority")
    new = new_kp.pubkey() if new_kp else (resolve_pubkey(new_upgrade_authority) if new_upgrade_authority else None)

    async def work() -> tuple[str, str]:
        async with RpcPool([url]) as pool:
            client = LoaderClient(pool, payer)
            state = await client.state(key)
            if state is None:
                raise DeployFailed(f"no account at {key}")
            target = state.programdata if state.kind == "program" else key
            if state.kind not in ("program", "buffer"):
                raise DeployFailed(f"{key} is a {state.kind} account: give a program id or a buffer")
            if new_kp is not None:
                ix = ldr.set_authority_checked(target, current.pubkey(), new_kp.pubkey())
                return state.kind, await client.send([ix], [current, new_kp])
            return state.kind, await client.send([ldr.set_authority(target, current.pubkey(), new)], [current])

    kind, sig = _run(work)
    _report(output, {kind: str(key), "upgrade_authority": str(new) if new else "none (immutable)", "signature": sig})


@program.command()
@click.argument("address", required=False)
@click.option("--buffers", is_flag=True, help="Close every buffer whose authority is the authority.")
@click.option("--program", "close_program", is_flag=True,
              help="ADDRESS is a program: close it for good (its id can never be deployed again).")
@click.option("--authority", default=None, help="Keypair file of the buffer/upgrade authority (default: wallet).")
@click.option("--recipient", default=None, help="Who receives the lamports (default: wallet).")
@url_option
@keypair_option
@output_option
def close(address: str | None, buffers: bool, close_program: bool, authority: str | None, recipient: str | None,
          url: str, keypair_path: str, output: str) -> None:
    """Reclaim the rent of a buffer (ADDRESS), of all the authority's buffers (--buffers), or of a program
    (ADDRESS --program)."""
    if buffers == (address is not None):
        raise click.UsageError("give a buffer/program ADDRESS or --buffers")
    payer = load_wallet(keypair_path)
    auth = _keypair(authority, "--authority") if authority else payer
    to = resolve_pubkey(recipient) if recipient else payer.pubkey()
    key = _pubkey(address, "ADDRESS") if address else None

    async def work() -> list[dict]:
        async with RpcPool([url]) as pool:
            client = LoaderClient(pool, payer)
            if key is None:
                targets = await client.buffers_of(auth.pubkey())
                return [{"closed": str(k), "lamports": lam,
                         "signature": await client.send([ldr.close(k, to, auth.pubkey())], [auth])}
                        for k, lam in targets]
            state = await client.state(key)
            if state is None:
                raise DeployFailed(f"no account at {key}")
            if state.kind == "program":
                if not close_program:
                    raise DeployFailed(f"{key} is a program: add --program to close it for good")
                acc = await client.account(state.programdata)
                ix = ldr.close(state.programdata, to, auth.pubkey(), key)
                return [{"closed": str(key), "lamports": acc.lamports if acc else 0,
                         "signature": await client.send([ix], [auth])}]
            if state.kind != "buffer":
                raise DeployFailed(f"{key} is a {state.kind} account: give a buffer or a program id")
            acc = await client.account(key)
            return [{"closed": str(key), "lamports": acc.lamports,
                     "signature": await client.send([ldr.close(key, to, auth.pubkey())], [auth])}]

    done = _run(work)
    if output == "json":
        emit_json(done)
        return
    if not done:
        click.echo("no buffers to close")
    for d in done:
        click.echo(f"closed {d['closed']}: {d['lamports'] / 1e9:.9f} SOL to {to} ({d['signature']})")


async def _deployed(url: str, key: Pubkey) -> dict:
    async with RpcPool([url]) as pool:
        client = LoaderClient(pool, Keypair())
        state = await client.state(key)
        if state is None:
            raise DeployFailed(f"no account at {key}")
        if state.kind == "buffer":
            acc = await client.account(key)
            return {"address": str(key), "kind": "buffer", "authority": str(state.authority),
                    "data_length": len(state.elf), "lamports": acc.lamports, "elf": state.elf}
        pd = await client.programdata(key)
        acc = await client.account((await client.state(key)).programdata)
        elf = pd.elf[:ldr.elf_length(pd.elf)]
        return {"program_id": str(key), "kind": "program", "programdata": str(state.programdata),
                "authority": str(pd.authority) if pd.authority else "none (immutable)",
                "last_deploy_slot": pd.slot, "data_length": len(elf), "max_data_length": len(pd.elf),
                "lamports": acc.lamports, "sha256": hashlib.sha256(elf).hexdigest(), "elf": pd.elf}


@program.command()
@click.argument("address")
@url_option
@output_option
def show(address: str, url: str, output: str) -> None:
    """A program's upgrade authority, data length, last deploy slot and the sha256 of its deployed bytes
    (or a buffer's authority and length)."""
    key = _pubkey(address, "ADDRESS")
    info = _run(lambda: _deployed(url, key))
    info.pop("elf")
    _report(output, info)


@program.command()
@click.argument("name")
@click.option("--program-id", required=True, help="The deployed program to compare.")
@url_option
@output_option
def verify(name: str, program_id: str, url: str, output: str) -> None:
    """The bytes deployed at --program-id equal NAME rebuilt here from C (or the .so at path NAME), byte
    for byte; exits 1 naming the first differing offset."""
    from programs.build import BuildError, build_program, find_clang, programs

    prog_name, so = resolve_so(name)
    pid = _pubkey(program_id, "--program-id")
    if prog_name:
        clang = find_clang()
        if clang is None:
            raise CommandFailed("clang not found: install it to rebuild the program from C")
        try:
            local = build_program(prog_name, programs()[prog_name], clang)
        except BuildError as e:
            raise CommandFailed(str(e)) from None
    else:
        local = so.read_bytes()
    info = _run(lambda: _deployed(url, pid))
    if info["kind"] != "program":
        raise CommandFailed(f"{pid} is a buffer, not a program")
    deployed: bytes = info["elf"]
    offset = next((i for i, (a, b) in enumerate(zip(local, deployed, strict=False)) if a != b), None)
    if offset is None and len(deployed) < len(local):
        offset = len(deployed)
    if offset is None and any(deployed[len(local):]):
        offset = len(local) + next(i for i, b in enumerate(deployed[len(local):]) if b)
    result = {"program_id": str(pid), "source": prog_name or str(so), "local_bytes": len(local),
              "local_sha256": hashlib.sha256(local).hexdigest(), "deployed_sha256": info["sha256"],
              "identical": offset is None}
    if offset is not None:
        result["first_difference_at"] = offset
    _report(output, result)
    if offset is not None:
        raise CommandFailed(f"program {pid} differs from {prog_name or so} at byte offset {offset} "
                            f"(deployed sha256 {info['sha256']}, local {result['local_sha256']})")
