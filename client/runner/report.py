"""What `psyche run-client` prints: one line per round (console) or one JSON object per event (json).

Events carry a `kind`; `round` events are the per-round summary a person watches, the rest (join, warmup,
witness, health_check, checkpoint, rejected, exit) say what the client did and why. Verbosity: -q shows only
rounds and problems, -v adds chain and P2P detail.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

QUIET_KINDS = {"round", "error", "rejected", "exit", "dropped", "log"}


class Reporter:
    def __init__(self, mode: str = "console", verbosity: int = 0, out: TextIO | None = None) -> None:
        if mode not in ("console", "json"):
            raise ValueError(f"logs must be console or json, got {mode!r}")
        self.mode, self.verbosity = mode, verbosity
        self.out = out or sys.stdout
        self.t0 = time.monotonic()
        self.last_at = self.t0  # when the last line was printed: a client silent for 10 s says why it waits

    def event(self, kind: str, detail: bool = False, **fields: Any) -> None:
        if detail and self.verbosity < 1:
            return
        if self.verbosity < 0 and kind not in QUIET_KINDS:
            return
        if self.mode == "json":
            line = json.dumps({"t": round(time.time(), 3), "kind": kind, **fields}, default=str, sort_keys=True)
        else:
            line = f"[{time.monotonic() - self.t0:7.1f}s] {self._console(kind, fields)}"
        print(line, file=self.out, flush=True)
        self.last_at = time.monotonic()

    @staticmethod
    def _console(kind: str, f: dict[str, Any]) -> str:
        if kind == "round":
            loss = f"{f['loss']:.4f}" if f.get("loss") is not None else "   -  "
            tps = f"{f['tokens_per_s']:,.0f}" if f.get("tokens_per_s") else "-"
            wit = {True: "posted", False: "not elected", None: "pending"}.get(f.get("witness"), str(f.get("witness")))
            return (f"round epoch {f['epoch']} step {f['step']:>4}  {f['phase']:<12} loss {loss}  tok/s {tps:>7}"
                    f"  results {f['gathered']}/{f['expected']}  applied {f['applied']}  witness {wit}"
                    f"  sent {_kb(f['bytes_sent'])} recv {_kb(f['bytes_received'])}")
        rest = "  ".join(f"{k}={v}" for k, v in f.items())
        return f"{kind:<12} {rest}"


PER_REQUEST_LOGGERS = ("httpx", "httpcore")


class ReporterLogHandler(logging.Handler):
    """Library log records (RPC failover, gossip, iroh) as the client's own events, so `--logs json`
    stays one JSON object per line."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.INFO if reporter.verbosity > 0 else logging.WARNING)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reporter.event("log", level=record.levelname.lower(), source=record.name,
                                message=record.getMessage()[:500])
        except Exception:  # a log line must never take the client down
            self.handleError(record)

    def install(self) -> None:
        root = logging.getLogger()
        root.handlers = [self]
        root.setLevel(self.level)
        # httpx/httpcore log every request at INFO ("HTTP/1.1 200 OK"): at -v they drowned the chain and P2P
        # events, so they show from -vv on.
        for name in PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET if self.reporter.verbosity >= 2 else logging.WARNING)


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f}MiB"
