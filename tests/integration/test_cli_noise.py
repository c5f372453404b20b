"""What a user reads: `-v` is not drowned in per-request HTTP lines, an RPC outage is not a warning per
call, and `run-client --help` says what --relay's choices mean (issue 23, "Noise" / "Messages that mislead")."""
from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from click.testing import CliRunner

from client.cli import main
from client.runner.report import Reporter, ReporterLogHandler
from coordinator_sdk.rpc_pool import AllEndpointsFailed, RpcPool


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("httpx", "httpcore")})
    yield
    root.handlers = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(("verbosity", "shown"), [(0, False), (1, False), (2, True)])
def test_http_request_lines_only_from_vv(restore_logging, verbosity: int, shown: bool) -> None:
    out = io.StringIO()
    ReporterLogHandler(Reporter("json", verbosity, out)).install()
    logging.getLogger("httpx").info('HTTP Request: POST http://127.0.0.1:8899 "HTTP/1.1 200 OK"')
    logging.getLogger("coordinator_sdk.rpc").warning("RPC down")
    messages = [json.loads(line)["message"] for line in out.getvalue().splitlines()]
    assert ("HTTP/1.1 200 OK" in " ".join(messages)) is shown
    assert "RPC down" in messages


def test_an_outage_warns_once_per_endpoint_not_per_call(caplog) -> None:
    async def outage() -> None:
        async with RpcPool(["http://127.0.0.1:1"], attempts=3, backoff=0.01) as pool:
            for _ in range(3):
                with pytest.raises(AllEndpointsFailed):
                    await pool.call(lambda c: c.get_slot())

    with caplog.at_level(logging.DEBUG, logger="coordinator_sdk.rpc"):
        asyncio.run(outage())
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 9  # 3 calls x 3 rounds, each still logged...
    warnings = [r for r in failures if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # ...but one warning
    assert warnings[0].getMessage().endswith("; retrying")  # one endpoint: there is no "next endpoint"


def test_a_timeout_warning_says_what_failed(caplog) -> None:
    """A timeout's str() is empty: the warning read "RPC ... failed (); retrying" (seen with 128 clients on one
    localnet). It names the error's type and the wait instead."""
    async def silent() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            async with RpcPool([url], attempts=1, timeout=0.2) as pool:
                with pytest.raises(AllEndpointsFailed):
                    await pool.call(lambda c: c.get_slot())
        finally:
            server.close()

    with caplog.at_level(logging.WARNING, logger="coordinator_sdk.rpc"):
        asyncio.run(silent())
    [warning] = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert "()" not in warning and "no answer within 0.2 s" in warning, warning


def test_relay_help_names_both_choices() -> None:
    res = CliRunner().invoke(main, ["run-client", "--help"], terminal_width=200)
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "'disabled' (direct connections only) or 'default' (n0's public relays)" in text
    assert "[default: disabled]" in text


def test_watch_ends_on_a_finished_run_only() -> None:
    from client.dashboard.terminal import finished

    assert finished({"run": {"phase": "Finished"}})
    assert not finished({"run": {"phase": "Paused"}}) and not finished({"run": None}) and not finished({})


def test_dashboard_on_a_busy_port_is_one_line_without_warnings() -> None:
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "client.cli", "dashboard", "--port", str(port), "-u",
                              "http://127.0.0.1:1"], capture_output=True, text=True, timeout=60, check=False,
                             cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 1, res
    assert res.stderr.strip() == f"Error: port {port} on 127.0.0.1 is in use (pick another with --port, or 0)"
