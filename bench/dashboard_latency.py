"""How fast the dashboard is: page load (navigation -> first view rendered) and update latency (a chain
change sent -> shown on the page), in Debian's chromium against a localnet run. Prints medians and maxima.

The change is the owner renaming the run (`update_metadata`): one transaction, which reaches the page as
localnet accountNotification -> dashboard server -> server-sent event -> render. "confirmed" is when the
SDK's send-and-confirm returned, for comparison. The page stamps the moment it shows the change itself
(a MutationObserver, wall clock of the same machine), so polling adds nothing to the figure.

    scripts/loopback-only .venv/bin/python -m bench.dashboard_latency [--loads 5] [--changes 20]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coordinator_sdk.client import Coordinator
from devtools.local_cluster import LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cdp_browser import Browser, find_chromium  # noqa: E402
from run_client_helpers import write_run_toml  # noqa: E402

RUN = "bench-board"


def summary(name: str, ms: list[float]) -> str:
    return f"{name:<34} median {statistics.median(ms):7.0f} ms   max {max(ms):7.0f} ms   (n={len(ms)})"


WATCH = """(() => {{ const el = document.getElementById('title'); window.__seen = null;
  new MutationObserver((_, obs) => {{ if (el.textContent.includes('{name}')) {{
    window.__seen = performance.timeOrigin + performance.now(); obs.disconnect(); }} }})
  .observe(el, {{childList: true, characterData: true, subtree: true}}); }})()"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--changes", type=int, default=20)
    a = ap.parse_args()
    binary = find_chromium()
    if binary is None:
        print("chromium is not installed (scripts/setup.sh installs it with apt as root)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp) / "net") as net:
        owner = net.wallet("owner")
        net.create_run(RUN, write_run_toml(Path(tmp), init_min=3), owner)
        url = net.start_dashboard(RUN)
        browser = Browser(binary)
        try:
            loads, dom = [], []
            for _ in range(a.loads):
                browser.navigate("about:blank")
                browser.navigate(url)
                loads.append(browser.wait_for("window.psycheDashboard && psycheDashboard.firstView", 20, "a view"))
                dom.append(browser.js("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"))
            shown, confirmed = [], []

            async def changes() -> None:
                async with Coordinator.from_wallet_file(net.url, RUN, owner) as c:
                    st = await c.fetch_state()
                    for i in range(a.changes):
                        name = f"bench-{i}"
                        browser.js(WATCH.format(name=name))  # the page notes when it shows the name
                        t0 = time.time()
                        await c.update_metadata(name, "", int(st.metadata.num_parameters), int(st.metadata.vocab_size))
                        confirmed.append((time.time() - t0) * 1000)
                        seen = browser.wait_for("window.__seen", 15, f"the page to show {name}")
                        shown.append(seen - t0 * 1000)

            asyncio.run(changes())
        finally:
            browser.close()
    print(summary("page DOMContentLoaded", dom))
    print(summary("page load (first view rendered)", loads))
    print(summary("chain change sent -> confirmed", confirmed))
    print(summary("chain change sent -> on the page", shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
