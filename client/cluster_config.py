"""Which cluster, wallet and programs a `psyche` command talks to, resolved in one place for every command.

Why one module: on a real cluster the programs live wherever their deployer put them, so every command that
touches the chain must agree on the ids, the RPC URL and the wallet, and a user must be able to ask where
each value came from (`psyche config show`). The order, for each value, is that of Solana's own tools with
one layer added: command-line flag > environment variable > psyche config file > Solana CLI config > default.

- flags: `-u/--url`, `-k/--keypair`, `--coordinator-program`, `--treasurer-program`;
- environment: PSYCHE_URL, PSYCHE_KEYPAIR, PSYCHE_COORDINATOR_PROGRAM, PSYCHE_TREASURER_PROGRAM
  (PSYCHE_WALLET, which `run-client` read before, still works there, with a one-line deprecation notice);
- the psyche config file, TOML: $PSYCHE_CONFIG or ~/.config/psyche/config.toml, keys `url`, `keypair`,
  `coordinator_program`, `treasurer_program`;
- the Solana CLI config, ~/.config/solana/cli/config.yml: `json_rpc_url` and `keypair_path` only;
- defaults: the localnet (`localhost`, ~/.config/solana/id.json, and the ids programs/deploy.py derives).
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

KEYS = ("url", "keypair", "coordinator_program", "treasurer_program")
ENV = {"url": "PSYCHE_URL", "keypair": "PSYCHE_KEYPAIR", "coordinator_program": "PSYCHE_COORDINATOR_PROGRAM",
       "treasurer_program": "PSYCHE_TREASURER_PROGRAM"}
SOLANA_KEYS = {"url": "json_rpc_url", "keypair": "keypair_path"}
DEFAULT_WALLET = "~/.config/solana/id.json"
CONFIG_ENV = "PSYCHE_CONFIG"


class ConfigError(click.ClickException):
    """A config file that cannot be read or holds a bad value: exit 2, like a bad flag."""
    exit_code = 2


def default_values() -> dict[str, str]:
    """The localnet's values: what a command uses when nothing says otherwise."""
    from programs.deploy import program_id_for

    return {"url": "localhost", "keypair": DEFAULT_WALLET,
            "coordinator_program": str(program_id_for("coordinator")),
            "treasurer_program": str(program_id_for("treasurer"))}


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def psyche_config_path(env: Mapping[str, str] = os.environ) -> Path:
    explicit = env.get(CONFIG_ENV)
    return Path(explicit).expanduser() if explicit else _home(env) / ".config" / "psyche" / "config.toml"


def solana_config_path(env: Mapping[str, str] = os.environ) -> Path:
    return _home(env) / ".config" / "solana" / "cli" / "config.yml"


def read_psyche_config(path: Path, required: bool) -> dict[str, str]:
    """The psyche config file's known keys. A file named by PSYCHE_CONFIG must exist; unknown keys and
    non-string values are refused (a typo'd key silently ignored would point a command at the wrong program)."""
    if not path.exists():
        if required:
            raise ConfigError(f"{CONFIG_ENV}={path}: no such file")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    for k, v in data.items():
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{path}: {k} must be a non-empty string")
    return {k: v.strip() for k, v in data.items()}


def read_solana_config(path: Path) -> dict[str, str]:
    """`json_rpc_url` and `keypair_path` of the Solana CLI's config.yml (an unreadable file is ignored, as
    the Solana CLI only warns about it: it is another tool's file)."""
    if not path.exists():
        return {}
    try:
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
    except Exception:  # noqa: BLE001  (another tool's file: never fatal here)
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for ours, theirs in SOLANA_KEYS.items():
        v = data.get(theirs)
        if isinstance(v, str) and v.strip():
            out[ours] = v.strip()
    return out


@dataclass
class ClusterConfig:
    """The resolved values and, per value, where it came from ("flag", "env PSYCHE_URL", a file, "default")."""
    values: dict[str, str]
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def coordinator_program(self) -> Any:
        from solders.pubkey import Pubkey

        return Pubkey.from_string(self.values["coordinator_program"])

    @property
    def treasurer_program(self) -> Any:
        from solders.pubkey import Pubkey

        return Pubkey.from_string(self.values["treasurer_program"])


def resolve(flags: Mapping[str, str | None] | None = None, env: Mapping[str, str] = os.environ) -> ClusterConfig:
    """Every value by the order flag > env > psyche config > Solana CLI config (url, keypair) > default.
    Program ids are checked to be base-58 public keys here, so a typo fails before any RPC."""
    flags = flags or {}
    cfg_path = psyche_config_path(env)
    layers: list[tuple[str, Mapping[str, str | None]]] = [
        ("flag", flags),
        ("env", {k: env.get(v) for k, v in ENV.items()}),
        (str(cfg_path), read_psyche_config(cfg_path, required=bool(env.get(CONFIG_ENV)))),
        (str(solana_config_path(env)), read_solana_config(solana_config_path(env))),
        ("default", default_values()),
    ]
    values, sources = {}, {}
    for key in KEYS:
        for name, layer in layers:
            v = layer.get(key)
            if v:
                values[key] = v
                sources[key] = f"env {ENV[key]}" if name == "env" else name
                break
    for key in ("coordinator_program", "treasurer_program"):
        check_program_id(values[key], f"{key} (from {sources[key]})")
    return ClusterConfig(values, sources)


def check_program_id(value: str, what: str) -> str:
    from solders.pubkey import Pubkey

    try:
        Pubkey.from_string(value)
    except ValueError:
        raise click.BadParameter(f"{what}: {value!r} is not a base-58 public key") from None
    return value


def install(cfg: ClusterConfig) -> None:
    """Make the resolved program ids the SDK's defaults in this process, so that every Coordinator,
    Treasurer, dashboard feed and run-client built without an explicit codec talks to them."""
    from coordinator_sdk.program_ids import use_program_ids

    use_program_ids(cfg.coordinator_program, cfg.treasurer_program)


# ---- click glue ---------------------------------------------------------------------------------------

def _program_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            check_program_id(value, "")
        except click.BadParameter:
            raise click.BadParameter(f"{value!r} is not a base-58 public key") from None
    ctx.meta.setdefault("psyche_flags", {})[param.name] = value
    return value


def program_options(f: F) -> F:
    """--coordinator-program / --treasurer-program on a command (values land in ctx.meta, read by
    `from_context`; the command function does not take them)."""
    for name in ("treasurer_program", "coordinator_program"):
        opt = "--" + name.replace("_", "-")
        f = click.option(opt, name, default=None, expose_value=False, callback=_program_callback,
                         is_eager=True, metavar="PUBKEY",
                         help=f"The {name.split('_')[0]} program's id (default: config, then the localnet's). "
                         f"Env {ENV[name]}.")(f)
    return f


def from_context(ctx: click.Context | None = None, url: str | None = None, keypair: str | None = None,
                 install_ids: bool = True) -> ClusterConfig:
    """Resolve for the running command: the flags it was given (url and keypair as passed on its command
    line, the program ids from `program_options`), then env, files, defaults; and install the ids."""
    ctx = ctx or click.get_current_context()
    flags: dict[str, str | None] = ctx.meta.setdefault("psyche_flags", {})
    for key, value in (("url", url), ("keypair", keypair)):
        if value is not None:
            flags[key] = value
    cfg = resolve(flags)
    if install_ids:
        install(cfg)
    return cfg
