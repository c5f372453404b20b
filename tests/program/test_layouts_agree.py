"""The coordinator account's layout is kept by hand in four places: the C structs (programs/coordinator/
coordinator.h, what the program really uses), the IDL (programs/coordinator/idl.json, read by anchorpy,
fast_decode and layout_view), the treasurer's copy of the offsets it reads (programs/treasurer/coord_layout.h)
and the reference model (coordinator_sdk/model/state.py: its constants and field names). Every field present
in two of them must agree: offsets and sizes as clang computes them for the program's target, with the
program's flags, against the IDL's packed layout and the treasurer's #defines."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest

from coordinator_sdk.layout_view import Layout, LayoutTable
from coordinator_sdk.model import state as model
from programs.build import CFLAGS, INCLUDE

ROOT = Path(__file__).resolve().parents[2]
COORD = ROOT / "programs" / "coordinator"
HEADER = COORD / "coordinator.h"
TREASURER_LAYOUT = ROOT / "programs" / "treasurer" / "coord_layout.h"
IDL = json.loads((COORD / "idl.json").read_text())
# IDL accounts are stored after an 8-byte discriminator, which the C structs hold as their first field
_ACCOUNTS = {a["name"] for a in IDL.get("accounts", [])}
_CONSTANTS = ("MAX_CLIENTS", "MAX_WITNESSES", "NUM_ROUNDS")


def c_structs(text: str) -> dict[str, list[str]]:
    """typedef struct { ... } Name; -> Name's field names in order (declarator lists and arrays included)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out: dict[str, list[str]] = {}
    for body, name in re.findall(r"typedef struct\s*\{([^{}]*)\}\s*(\w+)\s*;", text):
        names: list[str] = []
        for decl in body.split(";"):
            decl = decl.strip()
            if not decl:
                continue
            m = re.match(r"(?:const\s+)?\w+\s+(.*)$", decl, re.S)
            assert m, f"{name}: cannot parse {decl!r}"
            for d in m.group(1).split(","):
                ident = re.match(r"\s*\**\s*(\w+)", d)
                assert ident, f"{name}: cannot parse {d!r}"
                names.append(ident.group(1))
        out[name] = names
    return out


def c_layout(clang: str, tmp_path: Path, header: Path, structs: dict[str, list[str]]
             ) -> tuple[dict[str, dict[str, tuple[int, int]]], dict[str, int], dict[str, int]]:
    """(struct -> field -> (offset, size), struct -> sizeof, constant -> value) as clang lays them out for the
    program's target: a table of offsetof/sizeof compiled to assembly, read back from its .quad lines."""
    exprs: list[str] = []
    for s, fields in structs.items():
        exprs.append(f"sizeof({s})")
        for f in fields:
            exprs += [f"__builtin_offsetof({s}, {f})", f"sizeof((({s} *)0)->{f})"]
    exprs += [f"(unsigned long long)({c})" for c in _CONSTANTS]
    src = tmp_path / "layout_table.c"
    src.write_text(f'#include "{header.name}"\nconst unsigned long long psyche_layout_table[] = {{\n    '
                   + ",\n    ".join(exprs) + "\n};\n")
    out = tmp_path / "layout_table.s"
    flags = [f for f in CFLAGS if f != "-Werror"]
    res = subprocess.run([clang, *flags, "-I", str(INCLUDE), "-I", str(header.parent), "-S", str(src),
                          "-o", str(out)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    values = [int(v, 0) for v in re.findall(r"^\s*\.quad\s+(\S+)", out.read_text(), re.M)]
    assert len(values) == len(exprs), f"expected {len(exprs)} .quad values, read {len(values)}"
    it = iter(values)
    fields: dict[str, dict[str, tuple[int, int]]] = {}
    sizes: dict[str, int] = {}
    for s, names in structs.items():
        sizes[s] = next(it)
        fields[s] = {f: (next(it), next(it)) for f in names}
    consts = {c: next(it) for c in _CONSTANTS}
    return fields, sizes, consts


def idl_layout(table: LayoutTable, name: str) -> tuple[dict[str, tuple[int, int]], int]:
    """An IDL type's fields as (offset, size), in the C struct's frame (accounts: after the discriminator)."""
    lay: Layout = table.struct(name)
    base = 8 if name in _ACCOUNTS else 0
    assert lay.fields is not None
    return {f: (off + base, sub.size) for f, (off, sub) in lay.fields.items()}, lay.size + base


def treasurer_layout(text: str) -> dict[str, dict[str, tuple[int, int | None]]]:
    """coord_layout.h's #defines as struct -> field -> (offset, None) plus "__size__" -> (size, None)."""
    defines = {k: int(v.rstrip("ULul"), 0) for k, v in re.findall(r"#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\S*", text)}
    prefixes = {"CA": "CoordinatorAccount", "RC": "RegisteredClient", "CP": "ClientPoints"}
    renames = {("ClientPoints", "account"): "coordinator_account"}
    out: dict[str, dict[str, tuple[int, int | None]]] = {s: {} for s in prefixes.values()}
    for key, value in defines.items():
        m = re.match(r"(CA|RC|CP)_(OFF_(\w+)|SIZE)$", key)
        if not m:
            continue
        s = prefixes[m.group(1)]
        if m.group(2) == "SIZE":
            out[s]["__size__"] = (value, None)
        else:
            f = m.group(3).lower()
            out[s][renames.get((s, f), f)] = (value, None)
    out["#"] = {"MAX_CLIENTS": (defines["CA_MAX_CLIENTS"], None)}
    return out


def disagreements(c_fields: dict[str, dict[str, tuple[int, int]]], c_sizes: dict[str, int],
                  c_consts: dict[str, int], idl: LayoutTable, treasurer: dict[str, dict[str, tuple[int, int | None]]]
                  ) -> tuple[list[str], int]:
    """Every mismatch between the C layout and the others, and how many (field, source) pairs were compared."""
    bad: list[str] = []
    compared = 0
    for s, fields in c_fields.items():
        if s not in idl.types:
            continue
        idl_fields, idl_size = idl_layout(idl, s)
        compared += 1
        if idl_size != c_sizes[s]:
            bad.append(f"{s}: sizeof {c_sizes[s]} in C, {idl_size} in the IDL")
        for f, (off, size) in fields.items():
            if f in idl_fields:
                compared += 1
                if idl_fields[f] != (off, size):
                    bad.append(f"{s}.{f}: (offset, size) {(off, size)} in C, {idl_fields[f]} in the IDL")
    for s, fields in treasurer.items():
        for f, (value, _) in fields.items():
            compared += 1
            if s == "#":
                want = c_consts[f]
            elif f == "__size__":
                want = c_sizes[s]
            elif f in c_fields[s]:
                want = c_fields[s][f][0]
            else:
                bad.append(f"{s}.{f}: in coord_layout.h, not in the C struct")
                continue
            if value != want:
                bad.append(f"{s}.{f}: {want} in C, {value} in coord_layout.h")
    for c in _CONSTANTS:
        compared += 1
        if getattr(model, c) != c_consts[c]:
            bad.append(f"{c}: {c_consts[c]} in C, {getattr(model, c)} in model/state.py")
    # the model's records: every field it keeps under the chain's name is a field of the C struct
    for cls, s in ((model.Config, "Config"), (model.RegisteredClient, "RegisteredClient"),
                   (model.EpochClient, "EpochClient"), (model.Round, "Round"), (model.Witness, "Witness")):
        for f in dataclasses.fields(cls):
            compared += 1
            if f.name not in c_fields[s] and f.name != "witnesses":  # Round.witnesses: C keeps a count + array
                bad.append(f"{s}.{f.name}: in model/state.py, not in the C struct")
    return bad, compared


@pytest.fixture
def c_header(clang: str, tmp_path: Path):
    def _build(text: str | None = None):
        header = HEADER
        if text is not None:
            header = tmp_path / "coordinator.h"
            header.write_text(text)
        structs = c_structs(header.read_text())
        return c_layout(clang, tmp_path, header, structs)
    return _build


def test_c_header_parser_reads_every_struct() -> None:
    structs = c_structs(HEADER.read_text())
    for s in ("Config", "Witness", "Round", "EpochClient", "RegisteredClient", "CoordinatorAccount", "ClientPoints"):
        assert structs.get(s), s
    assert structs["Config"][:3] == ["warmup_time", "cooldown_time", "max_round_train_time"]
    assert "discriminator" in structs["CoordinatorAccount"] and "exited_clients" in structs["CoordinatorAccount"]


def test_hand_kept_layouts_agree_field_by_field(c_header) -> None:
    fields, sizes, consts = c_header()
    bad, compared = disagreements(fields, sizes, consts, LayoutTable(IDL),
                                  treasurer_layout(TREASURER_LAYOUT.read_text()))
    assert not bad, "\n".join(bad)
    assert compared > 150  # the comparison really covered the account, not an empty intersection


def test_a_shifted_field_is_caught(c_header) -> None:
    """Swap two u8 fields' order in a copy of the header: the IDL check names them."""
    text = HEADER.read_text()
    shifted = text.replace("uint8_t run_state, pending_pause,", "uint8_t pending_pause, run_state,", 1)
    assert shifted != text
    fields, sizes, consts = c_header(shifted)
    bad, _ = disagreements(fields, sizes, consts, LayoutTable(IDL), treasurer_layout(TREASURER_LAYOUT.read_text()))
    assert any(b.startswith("CoordinatorAccount.run_state:") for b in bad), bad
    assert any(b.startswith("CoordinatorAccount.pending_pause:") for b in bad), bad


def test_a_wrong_treasurer_offset_is_caught(c_header) -> None:
    fields, sizes, consts = c_header()
    text = TREASURER_LAYOUT.read_text().replace("#define RC_OFF_EARNED 136", "#define RC_OFF_EARNED 128")
    bad, _ = disagreements(fields, sizes, consts, LayoutTable(IDL), treasurer_layout(text))
    assert bad == ["RegisteredClient.earned: 136 in C, 128 in coord_layout.h"]
