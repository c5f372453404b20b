"""The coordinator program's events, decoded from transaction logs: the one decoder the dashboard and the
CLI share.

The program emits `sol_log_data` records, which a validator logs as `Program data: <base64> <base64> ...`
inside the program's invocation. Only records logged while the coordinator program itself is executing
count (another program could log look-alike data in the same transaction). Records:

    join      signer32 p2p32                      a client registered (or re-registered) for the run
    bank      signer32 earned u64, slashed u64    a join took this wallet's registry slot and banked its
                                                  points in its ClientPoints PDA (added to what was there)
    witness   signer32 metadata16                 metadata = step u32, loss f32, tokens/s f32, bandwidth f32
    drop      target32 reporter32                 a health check dropped `target`
    absent    height u32, mask32                  the tick that ended round `height` dropped the clients a
                                                  quorum of its witnesses left out (bit i: epoch client i of
                                                  that round, see coordinator_sdk.participation)
    state     run_state u8, step u32, epoch u32   the run moved to another phase
    epoch_end epoch u32, step u32, clients u32    an epoch closed and its rewards were paid
    verdict   verifier32 trainer32 height u32, outcome u8, result32, ef32
                                                  a verifier's recomputation of the trainer's result of
                                                  round `height` (outcome 1 pass, 0 fail) with its evidence
    convicted trainer32 height u32                fails >= 2 and > passes (that result or the epoch): Ejected
    checkpoint_vote    signer32 vote u64, votes u32, healthy u32
                       a healthy epoch client voted in Cooldown for a checkpoint (vote =
                       sha256(reference)[:8] LE, or 1 when that is 0); votes = the healthy clients
                       now voting the same, healthy = the healthy epoch clients
    checkpoint_adopted reference (<= 127 bytes), votes u32, healthy u32
                       a vote left its reference with a strict majority (votes * 2 > healthy):
                       it is the run's checkpoint (logged again by each later concurring vote)

History comes from `getSignaturesForAddress` + `getTransaction` (`backfill`), live events from
`logsSubscribe` notifications (`decode_logs` on their `logs`), both for the run's coordinator account.
"""
from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from solders.pubkey import Pubkey

PHASES = ["Uninitialized", "WaitingForMembers", "Warmup", "RoundTrain", "RoundWitness", "Cooldown", "Finished",
          "Paused"]
RpcCall = Callable[[str, list], Awaitable[Any]]


@dataclass
class RunEvent:
    """One decoded event. `fields` holds the kind's own values (plain JSON types)."""
    kind: str
    signature: str
    slot: int | None
    block_time: int | None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {**{k: v for k, v in d.items() if k != "fields"}, **d["fields"]}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _key(raw: bytes) -> str:
    return str(Pubkey.from_bytes(raw))


def decode_record(parts: list[bytes]) -> tuple[str, dict[str, Any]] | None:
    """One `sol_log_data` record (its byte strings) -> (kind, fields), or None if it is not a known event
    of the right shape (unknown kinds are skipped so an upgraded program does not break old readers)."""
    if not parts:
        return None
    kind, rest = parts[0].decode("ascii", errors="replace"), parts[1:]
    sizes = [len(p) for p in rest]
    if kind == "join" and sizes == [32, 32]:
        return kind, {"wallet": _key(rest[0]), "p2p": rest[1].hex()}
    if kind == "bank" and sizes == [32, 8, 8]:
        earned, slashed = struct.unpack("<QQ", rest[1] + rest[2])
        return kind, {"wallet": _key(rest[0]), "earned": earned, "slashed": slashed}
    if kind == "witness" and sizes == [32, 16]:
        step, loss, tps, bandwidth = struct.unpack("<Ifff", rest[1])
        return kind, {"wallet": _key(rest[0]), "step": step, "loss": _finite(loss), "tokens_per_sec": _finite(tps),
                      "bandwidth": _finite(bandwidth)}
    if kind == "drop" and sizes == [32, 32]:
        return kind, {"wallet": _key(rest[0]), "reporter": _key(rest[1])}
    if kind == "absent" and sizes == [4, 32]:
        mask = rest[1]
        return kind, {"height": struct.unpack("<I", rest[0])[0],
                      "indices": [i for i in range(256) if mask[i // 8] >> (i % 8) & 1]}
    if kind == "verdict" and sizes == [32, 32, 4, 1, 32, 32]:
        return kind, {"wallet": _key(rest[0]), "trainer": _key(rest[1]), "height": struct.unpack("<I", rest[2])[0],
                      "outcome": "pass" if rest[3][0] else "fail", "result": rest[4].hex(), "ef": rest[5].hex()}
    if kind == "convicted" and sizes == [32, 4]:
        return kind, {"wallet": _key(rest[0]), "height": struct.unpack("<I", rest[1])[0]}
    if kind == "state" and sizes == [1, 4, 4]:
        state = rest[0][0]
        return kind, {"phase": PHASES[state] if state < len(PHASES) else f"state {state}",
                      "step": struct.unpack("<I", rest[1])[0], "epoch": struct.unpack("<I", rest[2])[0]}
    if kind == "epoch_end" and sizes == [4, 4, 4]:
        epoch, step, clients = struct.unpack("<III", b"".join(rest))
        return kind, {"epoch": epoch, "step": step, "clients": clients}
    if kind == "checkpoint_vote" and sizes == [32, 8, 4, 4]:
        vote, votes, healthy = struct.unpack("<QII", b"".join(rest[1:]))
        return kind, {"wallet": _key(rest[0]), "vote": f"{vote:016x}", "votes": votes, "healthy": healthy}
    if kind == "checkpoint_adopted" and len(sizes) == 3 and sizes[0] <= 127 and sizes[1:] == [4, 4]:
        votes, healthy = struct.unpack("<II", b"".join(rest[1:]))
        return kind, {"reference": rest[0].decode("utf-8", errors="replace"), "votes": votes, "healthy": healthy}
    return None


def decode_logs(logs: list[str], program_id: Pubkey | str, signature: str = "", slot: int | None = None,
                block_time: int | None = None) -> list[RunEvent]:
    """Every coordinator event in one transaction's log messages, in order."""
    pid = str(program_id)
    stack: list[str] = []
    out: list[RunEvent] = []
    for line in logs:
        if line.startswith("Program ") and " invoke [" in line:
            stack.append(line.split(" ")[1])
        elif line.startswith("Program ") and (line.endswith(" success") or " failed" in line) and stack \
                and line.split(" ")[1] == stack[-1]:
            stack.pop()
        elif line.startswith("Program data: ") and stack and stack[-1] == pid:
            try:  # an empty field (an empty checkpoint reference) is an empty string between two spaces
                parts = [base64.b64decode(p, validate=True) for p in line[len("Program data: "):].split(" ")]
            except (binascii.Error, ValueError):
                continue
            decoded = decode_record(parts)
            if decoded is not None:
                out.append(RunEvent(decoded[0], signature, slot, block_time, decoded[1]))
    return out


async def backfill(call: RpcCall, address: Pubkey | str, program_id: Pubkey | str, until: str | None = None,
                   limit: int = 1000, skip: set[str] | frozenset[str] = frozenset()
                   ) -> tuple[list[RunEvent], str | None]:
    """Events of the newest `limit` successful transactions that mention `address` (newer than `until`,
    when given; those in `skip` are known already and not fetched), oldest first, and the newest signature
    seen (to pass as `until` next time)."""
    cfg: dict[str, Any] = {"limit": min(limit, 1000)}
    if until:
        cfg["until"] = until
    sigs = await call("getSignaturesForAddress", [str(address), cfg])
    newest = sigs[0]["signature"] if sigs else until
    wanted = [e for e in reversed(sigs) if e.get("err") is None and e["signature"] not in skip]
    import asyncio  # here: `run status` reads PHASES and must not import asyncio for it

    gate = asyncio.Semaphore(8)  # a few requests in flight: a long history loads in a fraction of the time

    async def logs_of(entry: dict[str, Any]) -> list[RunEvent]:
        async with gate:
            tx = await call("getTransaction", [entry["signature"], {"encoding": "json",
                                                                     "maxSupportedTransactionVersion": 0}])
        logs = ((tx or {}).get("meta") or {}).get("logMessages") or []
        return decode_logs(logs, program_id, entry["signature"], entry.get("slot"), entry.get("blockTime"))

    per_tx = await asyncio.gather(*(logs_of(e) for e in wanted))
    return [ev for events in per_tx for ev in events], newest


def loss_by_step(events: Any) -> list[dict[str, Any]]:
    """The witnesses' reports per step, oldest first: mean loss and tokens/s over the witnesses that
    reported a finite value, and how many witnesses reported (the loss chart's points)."""
    steps: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        if e.kind == "witness":
            steps.setdefault(e.fields["step"], []).append(e.fields)
    out = []
    for step in sorted(steps):
        reports = steps[step]
        losses = [r["loss"] for r in reports if r["loss"] is not None and r["loss"] > 0]
        rates = [r["tokens_per_sec"] for r in reports if r["tokens_per_sec"] is not None]
        out.append({"step": step, "loss": sum(losses) / len(losses) if losses else None,
                    "tokens_per_sec": sum(rates) / len(rates) if rates else None, "witnesses": len(reports)})
    return out
