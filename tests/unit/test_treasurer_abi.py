"""The treasurer's C source, its IDL and the SDK agree: discriminators, error codes and names, account sizes,
and the coordinator program id compiled into the treasurer."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from coordinator_sdk.codec import PROGRAM_ID as COORDINATOR_ID
from coordinator_sdk.treasurer_codec import TreasurerCodec, run_index

SRC = Path(__file__).resolve().parents[2] / "programs" / "treasurer"
HEADER = (SRC / "treasurer.h").read_text()


def _define(name: str) -> int:
    return int(re.search(rf"#define {name} (0x[0-9a-f]+)ULL", HEADER).group(1), 16)


def test_instruction_and_account_discriminators_match_the_idl_names() -> None:
    codec = TreasurerCodec()
    for ix in codec.idl_json["instructions"]:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", ix["name"]).lower()
        want = int.from_bytes(hashlib.sha256(f"global:{snake}".encode()).digest()[:8], "little")
        assert _define(f"IX_{snake.upper()}") == want, snake
    for acc in ("Run", "Participant"):
        want = int.from_bytes(hashlib.sha256(f"account:{acc}".encode()).digest()[:8], "little")
        assert _define(f"DISC_{acc.upper()}") == want


def test_errors_in_the_idl_follow_the_c_enum() -> None:
    body = re.search(r"enum \{\s*(T_INVALID_INSTRUCTION = 7000,.*?)\};", HEADER, re.S).group(1)
    names = [n.strip().split("=")[0].strip() for n in body.replace("\n", " ").split(",") if n.strip()]
    idl = TreasurerCodec().idl_json["errors"]
    assert [e["code"] for e in idl] == list(range(7000, 7000 + len(names)))
    camel = ["".join(p.capitalize() for p in n[2:].split("_")) for n in names]
    assert [e["name"] for e in idl] == camel


def test_account_sizes_match_the_c_structs() -> None:
    codec = TreasurerCodec()
    assert codec.program.account["Run"].size == 336
    assert codec.program.account["Participant"].size == 128
    assert "sizeof(Run) == 336" in HEADER and "sizeof(Participant) == 128" in HEADER


def test_no_coordinator_program_id_compiled_in() -> None:
    """The coordinator's id is bound per Run at run_create (Run.coordinator_program), not built into the .so."""
    assert "COORDINATOR_PROGRAM_ID" not in "".join(p.read_text() for p in SRC.glob("*.[ch]"))
    run = next(a for a in TreasurerCodec().idl_json["accounts"] if a["name"] == "Run")
    fields = [f["name"] for f in run["type"]["fields"]]
    assert fields[-2:] == ["coordinatorProgram", "reserved"]
    assert bytes(COORDINATOR_ID) not in (SRC.parent / "deploy" / "treasurer.so").read_bytes()


def test_deterministic_index_is_the_first_8_bytes_of_sha256() -> None:
    assert run_index("abc") == int.from_bytes(hashlib.sha256(b"abc").digest()[:8], "little")
