"""The program ids this process talks to by default: the CLI sets them once per command from the resolved
cluster configuration (client.cluster_config.install), and every Coordinator, Treasurer, dashboard feed and
run-client built without an explicit codec reads them (coordinator_sdk.client.default_codec).

Kept apart from coordinator_sdk.client so that setting them imports nothing but solders: every `psyche`
command resolves its configuration, and most never build a codec (bench/cli_startup.py)."""
from __future__ import annotations

from solders.pubkey import Pubkey

_DEFAULT_IDS: dict[str, Pubkey | None] = {"coordinator": None, "treasurer": None}


def use_program_ids(coordinator: Pubkey | None, treasurer: Pubkey | None = None) -> None:
    """Make `coordinator` / `treasurer` (None: the localnet's) the program ids of every Coordinator and
    Treasurer built without an explicit codec in this process: the CLI calls it once per command with the
    resolved configuration (client.cluster_config), so programs deployed at any id are reached."""
    _DEFAULT_IDS.update(coordinator=coordinator, treasurer=treasurer)


def default_program_ids() -> dict[str, Pubkey | None]:
    """The ids `use_program_ids` set (None: the localnet's)."""
    return dict(_DEFAULT_IDS)
