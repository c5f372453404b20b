"""A run made with `psyche run create --paused` reads `Paused` everywhere a person looks (`run status`, `run
list`, the dashboard's data), although the program leaves its account `Uninitialized` until the first
`resume`; an account that was created but never configured still reads `Uninitialized`, so the two cannot be
confused. Real localnet, real commands."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from run_client_helpers import write_run_toml

from client.dashboard.server import Dashboard
from coordinator_sdk.client import Coordinator
from devtools.local_cluster import LocalCluster, psyche


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> LocalCluster:
    with LocalCluster(tmp_path_factory.mktemp("pausednet")) as cluster:
        yield cluster


def _status(net: LocalCluster, run_id: str) -> dict[str, Any]:
    return json.loads(psyche("run", "status", run_id, "--json", "-u", net.url).stdout)


def _dashboard_views(net: LocalCluster, run_ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(run id -> phase in /api/runs, run id -> phase in /api/run/<id>) from an in-process dashboard."""

    async def main() -> tuple[dict[str, str], dict[str, str]]:
        board = Dashboard(net.url, None, poll_interval=0.5)
        async with TestClient(TestServer(board.app())) as http:
            runs = {r["run_id"]: r["phase"] for r in (await (await http.get("/api/runs")).json())["runs"]}
            views = {}
            for run_id in run_ids:
                view = await (await http.get(f"/api/run/{run_id}")).json()
                views[run_id] = view["run"]["phase"]
            return runs, views

    return asyncio.run(main())


def test_a_run_created_paused_reads_paused_until_resumed(net: LocalCluster, tmp_path: Path) -> None:
    owner = net.wallet("owner")
    out = net.create_run("made-paused", write_run_toml(tmp_path, epoch_time=30, total_steps=50), owner, "--paused")
    assert "paused" in out
    status = _status(net, "made-paused")
    assert status["phase"] == "Paused", status
    assert status["checkpoint"].startswith("sha256:")
    text = psyche("run", "status", "made-paused", "-u", net.url).stdout
    assert "phase Paused" in text and "Uninitialized" not in text, text
    listed = {r["run_id"]: r["phase"] for r in json.loads(psyche("run", "list", "--json", "-u", net.url).stdout)}
    assert listed["made-paused"] == "Paused", listed

    async def bare_account() -> None:  # created, never configured: `resume` would refuse it
        async with Coordinator.from_wallet_file(net.url, "never-configured", owner) as c:
            await c.create_run(open_to_all=False)

    asyncio.run(bare_account())
    assert _status(net, "never-configured")["phase"] == "Uninitialized"

    runs, views = _dashboard_views(net, ["made-paused", "never-configured"])
    assert runs["made-paused"] == views["made-paused"] == "Paused", (runs, views)
    assert runs["never-configured"] == views["never-configured"] == "Uninitialized", (runs, views)

    psyche("run", "resume", "made-paused", "-u", net.url, "-k", str(owner))
    assert _status(net, "made-paused")["phase"] == "WaitingForMembers"
