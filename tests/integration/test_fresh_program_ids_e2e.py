"""The path a user takes off the project's own ids (issue 22): both programs deployed with `psyche program
deploy` at fresh program ids on a fresh localnet, a treasurer run created against them, three `psyche
run-client` processes configured with those ids (environment only) that train it to the end, and every
client's claim paid in tokens. The programs at the localnet's default ids never see the run."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from run_client_helpers import expected_points, finished, logs, pubkey_of, write_run_toml

from devtools.local_cluster import LocalCluster, psyche

pytestmark = pytest.mark.slow
RUN = "fresh-ids"
PER_POINT = 1000


def _fresh_keypair(path: Path) -> str:
    from solders.keypair import Keypair

    from coordinator_sdk.keypair_file import write_keypair

    kp = Keypair()
    write_keypair(path, kp)
    return str(kp.pubkey())


def test_programs_at_fresh_ids_train_and_pay(tmp_path: Path) -> None:
    toml = write_run_toml(tmp_path, epoch_time=8, total_steps=10)
    with LocalCluster(tmp_path / "net") as net:
        owner = str(net.wallet("owner", sol=20))
        ids = {}
        for name in ("coordinator", "treasurer"):
            ids[name] = _fresh_keypair(tmp_path / f"{name}-program.json")
            out = psyche("program", "deploy", name, "--program-keypair", str(tmp_path / f"{name}-program.json"),
                         "-u", net.url, "-k", owner, timeout=180)
            assert ids[name] in out.stdout + out.stderr, out.stdout + out.stderr
            shown = psyche("program", "verify", name, "--program-id", ids[name], "-u", net.url, timeout=180)
            assert shown.returncode == 0
        env = {"PSYCHE_COORDINATOR_PROGRAM": ids["coordinator"], "PSYCHE_TREASURER_PROGRAM": ids["treasurer"]}

        mint = re.search(r"mint (\w+)", psyche("token", "create-mint", "--decimals", "6", "-k", owner, "-u",
                                               net.url).stdout).group(1)
        psyche("token", "mint", mint, "1000", "-k", owner, "-u", net.url)
        psyche("run", "create", RUN, "--config", str(toml), "-u", net.url, "-k", owner, "--treasurer", "--mint",
               mint, "--collateral-per-point", str(PER_POINT), env=env)
        psyche("run", "fund", RUN, "100", "-k", owner, "-u", net.url, env=env)
        # the localnet's default programs hold no such run
        default = psyche("run", "status", RUN, "--json", "-u", net.url, check=False)
        assert default.returncode != 0 and "no run" in (default.stderr + default.stdout), default

        clients = [net.start_client(f"c{i}", RUN, env=env) for i in range(3)]
        codes = net.wait_all(clients, 300)
        assert codes == [0, 0, 0], logs(clients)
        digests = {finished(c)["weights_sha256"] for c in clients}
        assert len(digests) == 1, digests

        shown = json.loads(psyche("rewards", "show", "--run-id", RUN, "--json", "-u", net.url, env=env).stdout)
        earned = {p["user"]: p["earned"] for p in shown["participants"]}
        for c in clients:
            assert earned[pubkey_of(c.wallet)] == expected_points(c, 900) > 0, (c.name, earned)
            out = psyche("rewards", "claim", "--run-id", RUN, "-k", str(c.wallet), "-u", net.url, env=env).stdout
            assert "claimed" in out.lower(), out
        after = json.loads(psyche("rewards", "show", "--run-id", RUN, "--json", "-u", net.url, env=env).stdout)
        for p in after["participants"]:
            assert p["claimable_points"] == 0 and p["token_balance"] == p["earned"] * PER_POINT, p
