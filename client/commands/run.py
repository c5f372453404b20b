"""`psyche run ...`: what a run's operator does (create, update, pause, resume, authorize, revoke, tick) and
what anyone can look at (status, list). Bad config is refused before any transaction is sent."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from solders.pubkey import Pubkey

from client.cli_common import (
    CommandFailed,
    ExitCode,
    keypair_option,
    load_wallet,
    url_option,
    validate_run_id,
)
from client.commands.landing import unit_price_option
from client.lazy_group import LazyGroup


def run_async(coro: Any) -> Any:
    """client.interrupts.run_async, imported on first use: `run status` (a lazy subcommand of this group)
    reads without asyncio and must not pay for importing it."""
    from client.interrupts import run_async as run

    return run(coro)


def _run_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    return validate_run_id(value)


run_id_argument = click.argument("run_id", callback=_run_id)


@click.group("run", cls=LazyGroup, lazy={"status": "client.commands.run_status:status",
                                          "list": "client.commands.run_status:run_list",
                                          "fund": "client.commands.treasury:fund"})
def run() -> None:
    """Create, steer and inspect training runs."""


async def _with_coordinator(url: str, run_id: str, keypair: Any, work, treasurer: bool | None = None) -> Any:
    """Run `work` with the run's administrator: a Coordinator, or a Treasurer when the treasurer program
    administers the run (`treasurer` None: detected from the run's main authority)."""
    from client.cli_chain import quiet_rpc_warnings, require_program
    from client.errors import chain_failure
    from coordinator_sdk.client import Coordinator
    from coordinator_sdk.treasurer import Treasurer, administered_by_treasurer, default_treasurer_codec

    async with Coordinator(url, run_id, keypair) as c:
        try:
            with quiet_rpc_warnings():
                await require_program(c.pool, c.codec.program_id, "coordinator")
                if treasurer is None:
                    treasurer = await administered_by_treasurer(c)
                if treasurer:
                    await require_program(c.pool, default_treasurer_codec().program_id, "treasurer")
                    async with Treasurer(url, run_id, keypair) as t:
                        return await work(t)
                return await work(c)
        except Exception as e:  # SDK failures become one line each (chain_failure); anything else is a bug
            failure = chain_failure(e, keypair.pubkey())
            if failure is None:
                raise
            if "NotHalted" in failure.message:
                failure.message += " (pause the run first: psyche run pause ID)"
            raise failure from None


def _pubkey(value: str, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise click.BadParameter(f"{what}: {value!r} is not a base-58 public key") from None


def _treasurer_run_pda(run_id: str) -> Pubkey:
    from coordinator_sdk.treasurer import default_treasurer_codec

    return default_treasurer_codec().run_for(run_id)


def _wallet_or_none(path: str) -> Any:
    from solders.keypair import Keypair

    p = Path(path).expanduser()
    return load_wallet(p) if p.exists() else Keypair()  # read-only commands need no wallet


async def _afford(c: Any, treasurer: bool, open_to_all: bool, paused: bool) -> None:
    """Say what creating the run costs (rent of every account it creates, base fees) and refuse, before any
    transaction, when the wallet holds less (exit 9, like every other wallet-without-SOL failure)."""
    from client.run_cost import run_create_cost, sizes, sol

    async def rent(size: int) -> int:
        return (await c.pool.call(lambda cl: cl.get_minimum_balance_for_rent_exemption(size))).value

    codecs = (c.codec.coordinator, c.codec) if treasurer else (c.codec, None)
    cost = await run_create_cost(rent, sizes(*codecs), treasurer, open_to_all, paused)
    who = c.wallet.pubkey()
    balance = (await c.pool.call(lambda cl: cl.get_balance(who))).value
    click.echo(f"{cost.describe()}; wallet {who} has {sol(balance)} SOL")
    if balance < cost.total:
        raise CommandFailed(f"run create needs {sol(cost.total)} SOL, the wallet {who} has {sol(balance)} SOL "
                            f"(fund it: psyche airdrop {sol(cost.total - balance)} {who})", ExitCode.WALLET)


# The owner updates a create sends after the run exists (config, metadata, model, checkpoint, rates): each
# bumps the account's nonce once, from 0 at creation (authorize and set_paused(False) are told apart otherwise:
# the grant is its own account, a started run is no longer Uninitialized).
CREATE_UPDATES = 5


async def _unfinished_create(c: Any, raw: bytes, run_id: str, owner: Pubkey, mint: Pubkey | None,
                             collateral_per_point: int) -> Pubkey:
    """The coordinator account of run `run_id` when an earlier `run create` by `owner`, with the same
    --treasurer/--mint, stopped part-way (the run exists, is Uninitialized, never started): a re-run then
    finishes it, since every later step only sets a value. Anything else keeps the id refused."""
    from coordinator_sdk.account_view import view
    from coordinator_sdk.model.state import RunState

    used = f"run id {run_id!r} is already used on this cluster (instance {c.instance})"
    coordinator = c.coordinator if mint is not None else c
    inst = coordinator.codec.decode(raw)
    if mint is not None:
        expected = c.run
    else:
        expected = owner
    if inst.main_authority != expected:
        from coordinator_sdk.treasurer import default_treasurer_codec

        if inst.main_authority == default_treasurer_codec().run_for(run_id):
            raise CommandFailed(f"{used}, by a treasurer run (re-run with --treasurer --mint to finish it)")
        if mint is not None and inst.main_authority == owner:
            raise CommandFailed(f"{used}, by this wallet without --treasurer (re-run without it to finish it)")
        raise CommandFailed(f"{used}, by another wallet ({inst.main_authority})")
    if mint is not None:
        run = await c.fetch_run()
        if run.main_authority != owner:
            raise CommandFailed(f"{used}, by another wallet ({run.main_authority})")
        if run.collateral_mint != mint or int(run.collateral_per_point) != collateral_per_point:
            raise CommandFailed(f"{used}: it was created with --mint {run.collateral_mint} --collateral-per-point "
                                f"{int(run.collateral_per_point)}; re-run with those to finish it")
    state = view(await coordinator.fetch_state())
    if state.run_state != RunState.Uninitialized:
        raise CommandFailed(f"{used} (it is {state.run_state.name}; change it with `psyche run update`)")
    if state.nonce >= CREATE_UPDATES:  # every update of a create landed: a complete --paused create
        raise CommandFailed(f"{used} (created in full and not started: start it with `psyche run resume "
                            f"{run_id}`, change it with `psyche run update`)")
    return inst.coordinator_account


async def _authorized_anyone(c: Any, account: Pubkey) -> bool:
    """Whether the run already lets anyone join (authorize is refused a second time: the grant is a PDA)."""
    from coordinator_sdk.codec import ANYONE

    coordinator = getattr(c, "coordinator", c)
    pda = coordinator.codec.authorization_pda(coordinator.instance, ANYONE, account)
    return await coordinator._raw(pda) is not None


def _config_failure(config_path: Path, e: Exception) -> CommandFailed:
    """A run.toml refusal (exit 2) naming the file once: some RunConfigErrors already start with the path."""
    msg = str(e) or type(e).__name__
    return CommandFailed(msg if msg.startswith(f"{config_path}:") else f"{config_path}: {msg}", ExitCode.USAGE)


@run.command("create")
@run_id_argument
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="run.toml (see examples/run.toml).")
@click.option("--paused", is_flag=True, help="Leave the run paused (start it later with `psyche run resume`).")
@click.option("--treasurer", is_flag=True, help="Administer the run through the treasurer program: rewards are "
              "tokens of --mint held in the run's vault (fund it with `psyche run fund`).")
@click.option("--mint", default=None, help="With --treasurer: the SPL token mint rewards are paid in.")
@click.option("--collateral-per-point", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --treasurer: token base units paid per point (fixed at creation).")
@url_option
@keypair_option
@unit_price_option
def create(run_id: str, config_path: Path, paused: bool, treasurer: bool, mint: str | None,
           collateral_per_point: int, url: str, keypair_path: str) -> None:
    """Create run RUN_ID from a run.toml: config, metadata, model, initial checkpoint, rates, joins."""
    from client.run_config import RunConfigError, load_run_config
    from client.runner.checkpoint_ref import CheckpointRef, CheckpointRefError, model_digest, save_reference
    from client.training.checkpoint import CheckpointError, load_checkpoint
    from client.training.config import ModelConfig
    from client.training.model import build_model
    from coordinator_sdk.codec import ANYONE

    if treasurer != (mint is not None):
        raise click.UsageError("--treasurer and --mint go together")
    mint_key = _pubkey(mint, "--mint") if mint else None
    try:
        rc = load_run_config(config_path)
    except RunConfigError as e:
        raise _config_failure(config_path, e) from None
    try:
        if (rc.checkpoint_path / "config.json").exists():
            model = load_checkpoint(rc.checkpoint_path)
            if model.cfg.to_dict() != ModelConfig.from_dict(rc.model).to_dict():
                raise CommandFailed(f"{rc.checkpoint_path} holds a model whose config differs from [model]")
            ref = CheckpointRef(model_digest(model), str(rc.checkpoint_path))
        else:
            model = build_model(ModelConfig.from_dict(rc.model), seed=rc.seed)
            ref = save_reference(model, rc.checkpoint_path)
        reference = ref.encode()
    except (CheckpointError, CheckpointRefError, OSError) as e:
        raise CommandFailed(f"initial checkpoint: {e}") from None
    wallet = load_wallet(keypair_path)

    async def work(c) -> dict[str, Any]:
        raw = await c._raw(c.instance)
        if raw is None:
            await _afford(c, treasurer, rc.open_to_all, paused)
            if mint_key is not None:
                account = await c.create_run(mint_key, collateral_per_point=collateral_per_point, open_to_all=False)
            else:
                account = await c.create_run(open_to_all=False)
        else:
            account = await _unfinished_create(c, raw, run_id, wallet.pubkey(), mint_key, collateral_per_point)
            click.echo(f"run {run_id!r} was created by this wallet and never started: finishing its creation")
        if rc.open_to_all and not await _authorized_anyone(c, account):
            await c.authorize(ANYONE)
        await c.update_config(**rc.config)
        n_params = sum(p.numel() for p in model.parameters())
        await c.update_metadata(rc.name or run_id, rc.description, n_params, int(rc.model["vocab_size"]))
        await c.update_model(c.codec.program.type["ModelDescription"](**rc.model_fields))
        await c.set_checkpoint(reference)
        await c.set_future_epoch_rates(rc.earning_rate, rc.slashing_rate)
        if not paused:
            await c.set_paused(False)
        return {"run_id": run_id, "instance": str(c.instance), "coordinator_account": str(account),
                "checkpoint": reference, "parameters": n_params, "open": rc.open_to_all, "paused": paused}

    out = run_async(_with_coordinator(url, run_id, wallet, work, treasurer=treasurer))
    if treasurer:
        click.echo(f"treasurer run {_treasurer_run_pda(run_id)}: rewards in {mint_key}, {collateral_per_point} "
                   f"base unit(s) per point; fund it with `psyche run fund {run_id} AMOUNT`")
    click.echo(f"created run {run_id!r}: instance {out['instance']}, account {out['coordinator_account']}\n"
               f"  model: {out['parameters']:,} parameters, checkpoint {out['checkpoint']}\n"
               f"  {'open to anyone' if out['open'] else 'authorized wallets only'};"
               f" {'paused' if paused else 'waiting for members'}")


@run.command("update")
@run_id_argument
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@url_option
@keypair_option
@unit_price_option
def update(run_id: str, config_path: Path, url: str, keypair_path: str) -> None:
    """Apply a run.toml's config, metadata, model and rates to a paused run."""
    from client.run_config import RunConfigError, load_run_config

    try:
        rc = load_run_config(config_path)
    except RunConfigError as e:
        raise _config_failure(config_path, e) from None
    wallet = load_wallet(keypair_path)

    async def work(c) -> None:
        await c.update_config(**rc.config)
        st = await c.fetch_state()
        await c.update_metadata(rc.name or run_id, rc.description, int(st.metadata.num_parameters),
                                int(rc.model.get("vocab_size", st.metadata.vocab_size)))
        await c.update_model(c.codec.program.type["ModelDescription"](**rc.model_fields))
        await c.set_future_epoch_rates(rc.earning_rate, rc.slashing_rate)

    run_async(_with_coordinator(url, run_id, wallet, work))
    click.echo(f"updated run {run_id!r}")


def _simple(name: str, help_text: str, action) -> click.Command:
    @run.command(name, help=help_text)
    @run_id_argument
    @url_option
    @keypair_option
    @unit_price_option
    def cmd(run_id: str, url: str, keypair_path: str) -> None:
        wallet = load_wallet(keypair_path)
        sig = run_async(_with_coordinator(url, run_id, wallet, action))
        click.echo(f"{name}: {run_id} (signature {sig})")

    return cmd


_simple("pause", "Pause the run (takes effect at the end of the epoch).", lambda c: c.set_paused(True))
_simple("resume", "Start or resume the run.", lambda c: c.set_paused(False))
_simple("tick", "Send a tick (anyone may; it moves the run when a phase has timed out).", lambda c: c.tick())


def _grant(name: str) -> None:
    @run.command(name, help=f"{name.capitalize()} a wallet to join (PUBKEY, or 'anyone').")
    @run_id_argument
    @click.argument("pubkey")
    @url_option
    @keypair_option
    @unit_price_option
    def cmd(run_id: str, pubkey: str, url: str, keypair_path: str) -> None:
        from coordinator_sdk.codec import ANYONE

        try:
            grantee = ANYONE if pubkey == "anyone" else Pubkey.from_string(pubkey)
        except ValueError:
            raise click.BadParameter(f"{pubkey!r} is not a base-58 public key or 'anyone'") from None
        wallet = load_wallet(keypair_path)
        fn = (lambda c: c.authorize(grantee)) if name == "authorize" else (lambda c: c.revoke(grantee))
        sig = run_async(_with_coordinator(url, run_id, wallet, fn))
        click.echo(f"{name}d {pubkey} for {run_id} (signature {sig})")


_grant("authorize")
_grant("revoke")

