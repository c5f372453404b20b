"""Where every command's url, wallet and program ids come from (client/cluster_config.py): flag > env >
psyche config file > Solana CLI config (url, keypair) > the localnet's defaults, each with its source; and
the CLI glue that all commands share (`psyche config show`, run-client's deprecated PSYCHE_WALLET)."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from solders.keypair import Keypair

from client.cli import main
from client.cluster_config import ConfigError, default_values, resolve
from programs.deploy import program_id_for

A, B, C, D = (str(Keypair().pubkey()) for _ in range(4))


def _home(tmp: Path, psyche: str | None = None, solana: str | None = None) -> dict[str, str]:
    if psyche is not None:
        (tmp / ".config" / "psyche").mkdir(parents=True, exist_ok=True)
        (tmp / ".config" / "psyche" / "config.toml").write_text(psyche)
    if solana is not None:
        (tmp / ".config" / "solana" / "cli").mkdir(parents=True, exist_ok=True)
        (tmp / ".config" / "solana" / "cli" / "config.yml").write_text(solana)
    return {"HOME": str(tmp)}


SOLANA_YML = "---\njson_rpc_url: https://api.devnet.solana.com\nwebsocket_url: ''\nkeypair_path: /sol/id.json\n" \
             "address_labels:\n  '11111111111111111111111111111111': System Program\ncommitment: confirmed\n"


def test_defaults_are_the_localnet(tmp_path) -> None:
    cfg = resolve({}, _home(tmp_path))
    assert cfg.values == default_values()
    assert cfg.values["coordinator_program"] == str(program_id_for("coordinator"))
    assert cfg.values["treasurer_program"] == str(program_id_for("treasurer"))
    assert set(cfg.sources.values()) == {"default"}


def test_solana_cli_config_gives_url_and_keypair_only(tmp_path) -> None:
    cfg = resolve({}, _home(tmp_path, solana=SOLANA_YML))
    yml = str(tmp_path / ".config/solana/cli/config.yml")
    assert cfg.values["url"] == "https://api.devnet.solana.com" and cfg.sources["url"] == yml
    assert cfg.values["keypair"] == "/sol/id.json" and cfg.sources["keypair"] == yml
    assert cfg.sources["coordinator_program"] == "default"


def test_psyche_config_beats_solana_config(tmp_path) -> None:
    env = _home(tmp_path, psyche=f'url = "http://127.0.0.1:9999"\ncoordinator_program = "{A}"\n', solana=SOLANA_YML)
    cfg = resolve({}, env)
    toml = str(tmp_path / ".config/psyche/config.toml")
    assert (cfg.values["url"], cfg.sources["url"]) == ("http://127.0.0.1:9999", toml)
    assert (cfg.values["coordinator_program"], cfg.sources["coordinator_program"]) == (A, toml)
    assert cfg.values["keypair"] == "/sol/id.json"  # not in the psyche file: the Solana one's
    assert cfg.sources["treasurer_program"] == "default"


def test_env_beats_files_and_flags_beat_env(tmp_path) -> None:
    env = _home(tmp_path, psyche=f'coordinator_program = "{A}"\ntreasurer_program = "{A}"\nkeypair = "/p.json"\n',
                solana=SOLANA_YML)
    env |= {"PSYCHE_COORDINATOR_PROGRAM": B, "PSYCHE_TREASURER_PROGRAM": C, "PSYCHE_KEYPAIR": "/env.json",
            "PSYCHE_URL": "testnet"}
    cfg = resolve({}, env)
    assert cfg.values["coordinator_program"] == B
    assert cfg.sources["coordinator_program"] == "env PSYCHE_COORDINATOR_PROGRAM"
    assert cfg.values["treasurer_program"] == C and cfg.values["keypair"] == "/env.json"
    assert cfg.values["url"] == "testnet" and cfg.sources["url"] == "env PSYCHE_URL"
    cfg = resolve({"coordinator_program": D, "url": "devnet", "keypair": "/flag.json"}, env)
    assert [cfg.values[k] for k in ("coordinator_program", "url", "keypair", "treasurer_program")] == \
        [D, "devnet", "/flag.json", C]
    assert cfg.sources["coordinator_program"] == "flag" and cfg.sources["treasurer_program"].startswith("env")


def test_psyche_config_env_names_another_file(tmp_path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text(f'treasurer_program = "{B}"\n')
    env = _home(tmp_path, psyche=f'treasurer_program = "{A}"\n') | {"PSYCHE_CONFIG": str(other)}
    cfg = resolve({}, env)
    assert cfg.values["treasurer_program"] == B and cfg.sources["treasurer_program"] == str(other)
    with pytest.raises(ConfigError, match="no such file"):
        resolve({}, env | {"PSYCHE_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize("text, needle", [
    ('coordinator_programme = "x"\n', "unknown key(s) coordinator_programme"),
    ("url = 5\n", "url must be a non-empty string"),
    ("url = [\n", "config.toml"),
    ('coordinator_program = "not-a-key"\n', "is not a base-58 public key"),
])
def test_bad_psyche_config_is_refused(tmp_path, text, needle) -> None:
    with pytest.raises(click.ClickException, match=None) as e:
        resolve({}, _home(tmp_path, psyche=text))
    assert needle in e.value.format_message()


def test_unreadable_solana_config_is_ignored(tmp_path) -> None:
    cfg = resolve({}, _home(tmp_path, solana="{{{not yaml"))
    assert cfg.values == default_values()


def _cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, args, env=env)
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> dict[str, str]:
    for k in ("PSYCHE_URL", "PSYCHE_KEYPAIR", "PSYCHE_WALLET", "PSYCHE_CONFIG", "PSYCHE_COORDINATOR_PROGRAM",
              "PSYCHE_TREASURER_PROGRAM"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return {"HOME": str(tmp_path)}


def test_config_show_names_each_source(clean_env, tmp_path) -> None:
    _home(tmp_path, psyche=f'treasurer_program = "{A}"\n', solana=SOLANA_YML)
    code, out, _ = _cli(["config", "show", "--output", "json", "--coordinator-program", B],
                        clean_env | {"PSYCHE_KEYPAIR": "/k.json"})
    assert code == 0, out
    shown = json.loads(out)
    assert shown["coordinator_program"] == {"value": B, "source": "flag"}
    assert shown["treasurer_program"] == {"value": A, "source": str(tmp_path / ".config/psyche/config.toml")}
    assert shown["keypair"] == {"value": "/k.json", "source": "env PSYCHE_KEYPAIR"}
    assert shown["url"] == {"value": "https://api.devnet.solana.com",
                            "source": str(tmp_path / ".config/solana/cli/config.yml")}
    code, out, _ = _cli(["config", "show"], clean_env)
    assert code == 0 and "coordinator_program" in out and "(default)" in out


def test_a_bad_program_id_flag_is_a_usage_error(clean_env) -> None:
    code, _, err = _cli(["run", "status", "x", "--coordinator-program", "nope"], clean_env)
    assert code == 2 and "--coordinator-program" in err and "'nope' is not a base-58 public key" in err
    code, _, err = _cli(["rewards", "show", "--run-id", "x"], clean_env | {"PSYCHE_TREASURER_PROGRAM": "bad!"})
    assert code == 2 and "treasurer_program (from env PSYCHE_TREASURER_PROGRAM): 'bad!'" in err


def test_commands_install_the_resolved_ids_in_the_sdk(clean_env) -> None:
    """The ids a command resolves become the SDK's default codecs (what Coordinator/Treasurer/run-client use)."""
    from coordinator_sdk.client import default_codec, use_program_ids
    from coordinator_sdk.treasurer import default_treasurer_codec

    try:
        code, out, _ = _cli(["config", "show", "--coordinator-program", A, "--treasurer-program", B], clean_env)
        assert code == 0, out
        assert str(default_codec().program_id) == A and str(default_treasurer_codec().program_id) == B
        assert default_treasurer_codec().coordinator.program_id == default_codec().program_id
    finally:
        use_program_ids(None, None)
    assert default_codec().program_id == program_id_for("coordinator")
    assert default_treasurer_codec().program_id == program_id_for("treasurer")


def test_run_client_reads_psyche_keypair_and_psyche_wallet_is_a_deprecated_alias(clean_env, tmp_path) -> None:
    missing = str(tmp_path / "from-wallet.json")
    code, _, err = _cli(["run-client", "--run-id", "r"], clean_env | {"PSYCHE_WALLET": missing})
    assert "PSYCHE_WALLET is deprecated; use PSYCHE_KEYPAIR" in err and code == 9 and "from-wallet.json" in err
    code, _, err = _cli(["run-client", "--run-id", "r"], clean_env | {"PSYCHE_WALLET": missing,
                                                                       "PSYCHE_KEYPAIR": str(tmp_path / "k.json")})
    assert "deprecated" not in err and code == 9 and "k.json" in err
