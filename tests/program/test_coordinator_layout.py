"""The C structs and the IDL can never drift: values written by the program (from arguments built in
Python) decode field by field through the IDL; discriminators and error codes agree with the C header."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from solders.keypair import Keypair

from coordinator_sdk.codec import IDL_PATH, PROGRAM_ID, CoordinatorCodec
from coordinator_sdk.model.state import RunState
from coordinator_sdk.shuffle import elected_witnesses
from devtools.litesvm_harness import CoordinatorSvm

HEADER = (Path(IDL_PATH).parent / "coordinator.h").read_text()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_instruction_and_account_discriminators_match_the_header() -> None:
    codec = CoordinatorCodec()
    for ix in codec.idl_json["instructions"]:
        want = int.from_bytes(hashlib.sha256(f"global:{_snake(ix['name'])}".encode()).digest()[:8], "little")
        m = re.search(rf"#define IX_{_snake(ix['name']).upper()} 0x([0-9a-f]+)ULL", HEADER)
        assert m and int(m.group(1), 16) == want, ix["name"]
    for acc, macro in (("RunInstance", "RUN_INSTANCE"), ("CoordinatorAccount", "COORDINATOR_ACCOUNT"),
                       ("Authorization", "AUTHORIZATION")):
        want = int.from_bytes(hashlib.sha256(f"account:{acc}".encode()).digest()[:8], "little")
        m = re.search(rf"#define DISC_{macro} 0x([0-9a-f]+)ULL", HEADER)
        assert m and int(m.group(1), 16) == want, acc


def test_error_codes_match_the_c_enum_in_order() -> None:
    body = re.search(r"enum \{\s*E_INVALID_INSTRUCTION = 6000,(.*?)\};", HEADER, re.S).group(1)
    names = ["E_INVALID_INSTRUCTION"] + re.findall(r"E_[A-Z0-9_]+", body)
    idl = CoordinatorCodec().idl_json["errors"]
    assert [e["code"] for e in idl] == list(range(6000, 6000 + len(idl)))
    assert [_snake(e["name"]).upper() for e in idl] == [n[2:] for n in names]
    assert f"== {CoordinatorCodec().account_size}" in HEADER  # the C static assert pins the IDL's size


def test_program_written_fields_decode_through_the_idl() -> None:
    h = CoordinatorSvm()
    cfg = dict(warmup_time=11, cooldown_time=12, max_round_train_time=13, round_witness_time=14,
               global_batch_size_warmup_tokens=15_000, epoch_time=160, total_steps=17, max_seq_len=18,
               init_min_clients=2, min_clients=2, witness_nodes=1, global_batch_size_start=21,
               global_batch_size_end=22, waiting_for_members_extra_time=23)
    run = h.create_run("layout-run", config=cfg, rates=(31, 32))
    inst = h.codec.decode(bytes(h.raw(run.instance).data))
    assert (bytes(inst.run_id[:inst.run_id_len]), inst.main_authority, inst.join_authority, inst.coordinator_account) \
        == (b"layout-run", run.owner.pubkey(), run.owner.pubkey(), run.account)
    grant = h.codec.authorization_pda(run.instance, h.codec.program_id.default(), run.account)
    auth = h.codec.decode(bytes(h.raw(grant).data))
    assert auth.instance == run.instance and bytes(auth.grantee) == bytes(32)
    st = h.state(run)
    for k, v in cfg.items():
        assert getattr(st.config, k) == v, k
    assert (st.future_earning_rate, st.future_slashing_rate, st.version, st.run_state) == (31, 32, 1, 0)
    assert bytes(st.run_id[:st.run_id_len]) == b"layout-run" and st.instance == run.instance

    assert h.owner(run, "set_paused", False).ok
    users = [h.fund(Keypair()) for _ in range(2)]
    p2ps = [Keypair().pubkey() for _ in users]
    for u, p in zip(users, p2ps, strict=True):
        assert h.send(h.codec.join_run(u.pubkey(), run.instance, run.account, p, f"10.0.0.{len(p2ps)}:7"), [u]).ok
    st = h.state(run)
    for i, (u, p) in enumerate(zip(users, p2ps, strict=True)):
        c = st.clients[i]
        assert (c.signer, c.p2p, bytes(c.addr_hint).rstrip(b"\0"), c.active) == (u.pubkey(), p, b"10.0.0.2:7", 2)
    h.advance(cfg["waiting_for_members_extra_time"])
    assert h.client(run, "tick", users[0]).ok
    h.advance(cfg["warmup_time"])
    assert h.client(run, "tick", users[0]).ok
    st = h.state(run)
    r = st.rounds[st.rounds_head]
    assert (st.run_state, r.height, r.clients_len, r.data_index, st.earning_rate, st.slashing_rate) == (3, 0, 2, 0,
                                                                                                       31, 32)
    by_signer = {bytes(u.pubkey()): u for u in users}
    elected = by_signer[bytes(st.epoch_clients[elected_witnesses(2, r.random_seed, 1)[0]].signer)]
    participant = bytes([0b10]) + bytes(31)  # 2 clients: only bits 0 and 1 may be set
    broadcast, merkle = bytes(reversed(range(192))), hashlib.sha256(b"m").digest()
    h.advance(1)
    res = h.client(run, "witness", elected, list(participant), list(broadcast), list(merkle), st.step, 1.5, 2.5, 3.5)
    assert res.ok, res.error
    w = h.state(run).rounds[st.rounds_head].witnesses[0]
    assert (bytes(w.participants), bytes(w.broadcast_bloom), bytes(w.broadcast_merkle)) == (participant, broadcast,
                                                                                             merkle)
    assert bytes(w.reserved) == bytes(160)
    assert any(line.startswith("Program data: d2l0bmVzcw==") for line in res.logs)  # "witness" event
    assert PROGRAM_ID == h.codec.program_id


def model_description(codec: CoordinatorCodec, **over):
    import struct

    f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]  # noqa: E731
    loc = over.pop("location", b"http://127.0.0.1:8000/data/{}.bin")
    fields = dict(architecture=1, data_type=0, optimizer=1, lr_schedule=2, cold_start_warmup_steps=3,
                  lr_base=f32(4e-4), lr_warmup_init=f32(1e-6), lr_final=f32(4e-5), lr_warmup_steps=100,
                  lr_total_steps=10_000, distro_decay=f32(0.999), distro_chunk=64, distro_topk=8,
                  distro_quantize1bit=1, data_location_len=len(loc), distro_selection=1, distro_pipeline=1,
                  data_location=list(loc) + [0] * (192 - len(loc)))
    fields.update(over)
    return codec.program.type["ModelDescription"](**fields)


def test_metadata_model_and_progress_decode_field_by_field() -> None:
    h = CoordinatorSvm()
    run = h.create_run("meta", config=dict(warmup_time=10, cooldown_time=5, max_round_train_time=20,
                                           round_witness_time=2, global_batch_size_warmup_tokens=0, epoch_time=200,
                                           total_steps=100, max_seq_len=512, init_min_clients=1, min_clients=1,
                                           witness_nodes=0, global_batch_size_start=8, global_batch_size_end=8,
                                           waiting_for_members_extra_time=1))
    desc = "A 20M-parameter Llama trained on Shakespeare by anyone who joins. " * 4
    assert h.owner(run, "update_metadata", "shakespeare-20m", desc, 20_000_000, 256).ok
    model = model_description(h.codec)
    assert h.owner(run, "update_model", model).ok
    assert h.owner(run, "update_progress", 42).ok
    st = h.state(run)
    m = st.metadata
    assert bytes(m.name[:m.name_len]) == b"shakespeare-20m"
    assert bytes(m.description[:m.description_len]) == desc.encode()
    assert (m.num_parameters, m.vocab_size) == (20_000_000, 256)
    for k in ("architecture", "data_type", "optimizer", "lr_schedule", "cold_start_warmup_steps", "lr_base",
              "lr_warmup_init", "lr_final", "lr_warmup_steps", "lr_total_steps", "distro_decay", "distro_chunk",
              "distro_topk", "distro_quantize1bit", "data_location_len", "distro_selection", "distro_pipeline",
              "data_location"):
        assert getattr(st.model, k) == getattr(model, k), k
    assert st.step == 42
    from client.run_view import render, run_snapshot

    snap = run_snapshot(st)  # what `psyche run status` and the dashboard show
    assert snap["distro"] == {"selection": "shared", "pipeline": "synchronous", "chunk": 64, "topk": 8,
                              "decay": 0.999, "quantize_1bit": True}
    assert "distro shared: 8 coefficients per 64x64 DCT block, decay 0.999, 1-bit, synchronous pipeline" \
        in render(snap)


def _same(a, b, path: str = "") -> None:
    """anchorpy's decode (a) and the numpy decode (b) agree on every leaf."""
    if hasattr(a, "__dataclass_fields__") or type(a).__module__.startswith("anchorpy") or hasattr(a, "_asdict"):
        for name in (a.__dataclass_fields__ if hasattr(a, "__dataclass_fields__") else a._asdict()):
            _same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_fast_decoder_equals_anchorpy_on_a_populated_account() -> None:
    from devtools.fuzz import FuzzWorld, run_sequence

    world = FuzzWorld()
    ops = [("join", u, 0, 0, 0, 0) for u in range(4)] + [("advance", 0, 0, 0, 2, 0), ("tick", 0, 0, 0, 0, 0)]
    ops += [("warmup_witness", u, 0, 0, 0, 0) for u in range(4)]
    for _ in range(3):
        ops += [("witness", u, 0b1011, 0, 0, 0) for u in range(4)] + [("advance", 0, 0, 0, 3, 0),
                                                                      ("tick", 1, 0, 0, 0, 0)]
    run_sequence(world, 0, ops)
    h = world.svm
    key = h.codec.instance_pda("fuzz-1")
    acc_key = h.codec.decode(bytes(h.raw(key).data)).coordinator_account
    raw = bytes(h.raw(acc_key).data)
    slow, fast = h.codec.decode(raw), h.codec.decode_state(raw)
    assert any(r.num_witnesses > 0 for r in slow.rounds)  # blooms and roots are populated somewhere
    _same(slow, fast)
    from coordinator_sdk.fast_decode import decode  # the numpy view (the differential fuzzer's) agrees too

    numpy_view = decode(h.codec._compiler, "CoordinatorAccount", raw)
    _same(slow, numpy_view)
    from coordinator_sdk.account_view import view  # the clients' typed view reads the same from all three

    def typed(st):
        v = view(st)
        return (v.run_state, v.epoch, v.step, v.nonce, v.rounds_head, v.epoch_signers(), v.pending_members(),
                [v.epoch_client_state(i) for i in range(v.num_epoch_clients)], v.checkpoint_text(),
                int(v.current_round.height), int(v.round_at(1).height))

    assert typed(slow) == typed(fast) == typed(numpy_view)
    assert type(view(numpy_view).run_state) is RunState and type(view(numpy_view).step) is int
    inst_raw = bytes(h.raw(key).data)
    _same(h.codec.decode(inst_raw), h.codec.decode_instance(inst_raw))
    with pytest.raises(ValueError, match="wrong discriminator"):
        h.codec.decode_instance(raw)
