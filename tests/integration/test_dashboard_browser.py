"""The dashboard in a real browser (Debian's chromium, driven over the DevTools protocol) on a live localnet
run trained by real `psyche run-client` processes, administered by the treasurer (rewards in tokens): the page
loads, rides out an RPC outage ("reconnecting", then back), shows a chain change, follows the phases, ends
with the expected client rows and loss points, and shows the clients' token claims.

Prints the page's load time and its update latency after a chain change. With PSYCHE_DASHBOARD_SCREENSHOT
set, the mid-run screenshot is also copied there (the README's docs/dashboard.png is made this way).
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from cdp_browser import Browser, find_chromium
from run_client_helpers import logs, pubkey_of, write_run_toml

from coordinator_sdk.treasurer import Treasurer
from devtools.local_cluster import LocalCluster, psyche

RUN = "board-e2e"
CONNECTION = "document.getElementById('connection').textContent"
PHASE = "document.body.dataset.phase"
POINTS = "[...document.querySelectorAll('#loss-chart circle.point')].map(c => [+c.dataset.step, +c.dataset.value])"


def rename(url: str, owner: Path, name: str) -> float:
    """Rename the run; when (monotonic) its transaction was about to be sent."""
    async def main() -> float:
        async with Treasurer.from_wallet_file(url, RUN, owner) as c:
            st = await c.fetch_state()
            t0 = time.monotonic()
            await c.update_metadata(name, "", int(st.metadata.num_parameters), int(st.metadata.vocab_size))
            return t0

    return asyncio.run(main())


def test_dashboard_in_chromium(tmp_path: Path) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (scripts/setup.sh installs Debian's chromium with apt as root)")
    toml = write_run_toml(tmp_path, total_steps=6, epoch_time=4, init_min=2, min_clients=1)
    with LocalCluster(tmp_path / "net") as net:
        owner = net.wallet("owner")
        made = psyche("token", "create-mint", "--decimals", "6", "-k", str(owner), "-u", net.url).stdout
        mint = re.search(r"mint (\w+)", made).group(1)
        psyche("token", "mint", mint, "500", "-k", str(owner), "-u", net.url)
        net.create_run(RUN, toml, owner, "--treasurer", "--mint", mint, "--collateral-per-point", "1000")
        psyche("run", "fund", RUN, "100", "-k", str(owner), "-u", net.url)
        page_url = net.start_dashboard(RUN)
        browser = Browser(binary)
        try:
            browser.navigate(page_url)
            browser.wait_for("window.psycheDashboard && psycheDashboard.firstView", 20, "the first view")
            load_ms = browser.js("psycheDashboard.firstView")
            assert browser.js(PHASE) == "WaitingForMembers"
            assert browser.js("document.querySelectorAll('#clients tbody tr').length") == 0
            d = net.status(RUN)["distro"]  # the run's DisTrO settings, as `run status --json` reads them
            assert browser.js("document.getElementById('training').textContent") == (
                f"DisTrO {d['selection']} {d['topk']} per {d['chunk']}x{d['chunk']} block, decay {d['decay']:g}"
                f"{', 1-bit' if d['quantize_1bit'] else ''}, {d['pipeline']} pipeline")

            # the RPC goes away: the page says so and keeps what it knew; it comes back: the page resumes
            net.localnet.terminate()
            net.localnet.wait(timeout=20)
            browser.wait_for(f"{CONNECTION} === 'reconnecting'", 20, "the page to say reconnecting")
            assert browser.js(PHASE) == "WaitingForMembers"
            net.start_localnet()  # same port, same ledger
            browser.wait_for(f"{CONNECTION} === 'live'", 30, "the page to be live again")

            # a chain change after the outage reaches the page (the update latency)
            t0 = rename(net.url, owner, "renamed-live")
            browser.wait_for("document.getElementById('title').textContent.includes('renamed-live')", 15,
                             "the new run name", interval=0.005)
            latency_ms = (time.monotonic() - t0) * 1000

            wallets = [net.wallet(f"c{i}") for i in range(2)]
            clients = [net.start_client(f"c{i}", RUN, w) for i, w in enumerate(wallets)]
            browser.wait_for(f"{PHASE} && {PHASE} !== 'WaitingForMembers'", 60, "the phase to change")
            browser.wait_for(f"{POINTS}.length >= 3 && ['RoundTrain', 'RoundWitness'].includes({PHASE})", 90,
                             "three loss points mid-run")
            shot = browser.screenshot(tmp_path / "dashboard.png")
            if os.environ.get("PSYCHE_DASHBOARD_SCREENSHOT"):
                shutil.copyfile(shot, os.environ["PSYCHE_DASHBOARD_SCREENSHOT"])
            browser.wait_for(f"{PHASE} === 'Finished'", 90, "the run to finish")
            assert net.wait_all(clients, 30) == [0, 0], logs(clients)

            rows = browser.js("[...document.querySelectorAll('#clients tbody tr')].map(r => [r.dataset.wallet,"
                              " r.children[2].textContent, +r.children[3].textContent.replace(/\\D/g, '')])")
            status = {c["wallet"]: c for c in net.status(RUN)["clients"]}
            assert sorted(r[0] for r in rows) == sorted(pubkey_of(w) for w in wallets)
            for wallet, state, earned in rows:
                assert earned == status[wallet]["earned"] > 0 and state == status[wallet]["state"]

            # each client claims its points in tokens: the page shows the claims and the vault paying them
            for w in wallets:
                psyche("rewards", "claim", "--run-id", RUN, "-k", str(w), "-u", net.url)
            claimed = browser.wait_for("(() => { const r = [...document.querySelectorAll('#clients tbody tr')]"
                                       ".map(r => +r.children[5].textContent.replace(/\\D/g, ''));"
                                       " return r.every(x => x > 0) && r; })()", 20, "the claims on the page")
            assert sorted(claimed) == sorted(r[2] for r in rows)
            vault = 100 - sum(claimed) * 1000 / 10**6
            browser.wait_for(f"document.getElementById('vault-balance').textContent === '{vault:.6f} tokens'", 20,
                             f"the vault at {vault:.6f} tokens")

            points = browser.js(POINTS)
            witnessed = sorted({e["step"] for c in clients for e in c.of_kind("round") if e["witness"] is True})
            assert [p[0] for p in points] == witnessed, (points, witnessed)
            assert all(0 < p[1] < 10 for p in points) and points[-1][1] < points[0][1]  # the loss falls
            assert (tmp_path / "dashboard.png").stat().st_size > 10_000
            browser.navigate(net.start_dashboard("all"))  # the run list links to the run's page
            link = browser.wait_for("[...document.querySelectorAll('#runs tbody a')].map(a => [a.textContent,"
                                    " a.closest('tr').children[2].textContent])", 20, "the run list")
            assert link == [[RUN, "Finished"]]
            assert not browser.console, browser.console
            print(f"\ndashboard: first view {load_ms:.0f} ms after navigation; chain change -> page {latency_ms:.0f}"
                  f" ms (sent -> seen, an upper bound: polled after the confirmation); screenshot {shot}")
        finally:
            browser.close()
