"""client/runner/state_memo.py: a pure function of an immutable chain state is computed once per state object."""
from __future__ import annotations

from types import SimpleNamespace

from client.runner.state_memo import per_state
from coordinator_sdk.account_view import CoordinatorView
from coordinator_sdk.layout_view import Layout, StructView

LAYOUT = Layout("struct", 4, fields={"x": (0, Layout("prim", 4, fmt="<I"))})


def _state(x: int) -> CoordinatorView:
    return CoordinatorView(StructView(x.to_bytes(4, "little"), 0, LAYOUT))


def test_one_call_per_state_object_and_argument_and_answers_are_copies() -> None:
    calls = []

    @per_state
    def members(state: CoordinatorView, extra: int) -> set[int]:
        calls.append(extra)
        return {state.raw.x, extra}

    a, b = _state(1), _state(2)
    first = members(a, 7)
    first.add(99)  # a caller mutating its answer does not change the cached one
    assert members(a, 7) == {1, 7} and members(a, 8) == {1, 8} and members(b, 7) == {2, 7}
    assert calls == [7, 8, 7]  # the second (a, 7) came from the cache


def test_a_state_not_backed_by_bytes_is_never_cached() -> None:
    calls = []

    @per_state
    def read(state: object) -> int:
        calls.append(1)
        return state.x  # type: ignore[attr-defined]

    mutable = SimpleNamespace(x=1)
    assert read(mutable) == 1
    mutable.x = 2  # a test double mutated in place must be read afresh
    assert read(mutable) == 2 and len(calls) == 2


def test_the_cache_holds_a_bounded_number_of_states() -> None:
    import client.runner.state_memo as memo

    @per_state
    def x(state: CoordinatorView) -> int:
        return state.raw.x

    for i in range(3 * memo.MAX_ENTRIES):
        assert x(_state(i)) == i
    assert len(memo._MEMO) <= memo.MAX_ENTRIES  # every entry keeps a whole account alive
