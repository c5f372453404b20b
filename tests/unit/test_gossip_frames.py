"""Gossip's framing (client/p2p/gossip_wire.py) on its own: reassembly whatever the read boundaries, and a
header over the limit refused before its payload is kept."""
from __future__ import annotations

import random

from client.p2p.gossip_wire import HEADER, FrameSplitter, frame


def test_frames_come_out_whole_and_in_order_whatever_the_read_boundaries() -> None:
    rng = random.Random(7)
    msgs = [rng.randbytes(rng.randrange(0, 300)) for _ in range(50)]
    stream = b"".join(frame(m) for m in msgs)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(stream)), 40))
        parts = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        splitter, out = FrameSplitter(300), []
        for part in parts:
            out += splitter.feed(part)
        assert out == msgs and splitter.pending == 0 and not splitter.too_large


def test_an_incomplete_frame_is_held_not_returned() -> None:
    splitter = FrameSplitter(100)
    data = frame(b"abcdef")
    assert splitter.feed(data[:3]) == [] and splitter.pending == 3  # half a header
    assert splitter.feed(data[3:7]) == [] and splitter.pending == 7  # header and part of the payload
    assert splitter.feed(data[7:]) == [b"abcdef"] and splitter.pending == 0


def test_a_header_over_the_limit_stops_the_splitter_after_the_frames_before_it() -> None:
    splitter = FrameSplitter(100)
    good = frame(b"x" * 100)  # exactly the limit is allowed
    huge = HEADER.pack(101) + b"y" * 50  # announces one byte more than the limit
    assert splitter.feed(good + huge + frame(b"after")) == [b"x" * 100]
    assert splitter.too_large and splitter.pending == 0  # nothing of the oversized payload is kept
    assert splitter.feed(frame(b"more")) == []  # the stream's framing is not trusted any more


def test_an_empty_message_is_a_frame_too() -> None:
    assert FrameSplitter(10).feed(frame(b"") + frame(b"a")) == [b"", b"a"]
