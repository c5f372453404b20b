"""A per-state cache for pure functions of a chain state that a client re-evaluates many times per state.

Why: every gossip message wakes each waiter of a round (runner/watch.py) and the ticker looks every 0.1 s,
and their conditions read O(N) fields of the same account state each time (a layout view decodes a field on
every read): per client per round that is ~N messages x O(N) reads, a cost per peer result that grew with N
(issue 24). A state read from the chain is immutable (a view over `bytes`), so a pure function of it and of
hashable arguments can be computed once per state object. States not backed by `bytes` (test doubles built
from mutable objects) are never cached. Callers get a shallow copy, so mutating an answer changes nothing.
"""
from __future__ import annotations

import copy
import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from coordinator_sdk.account_view import view

F = TypeVar("F", bound=Callable[..., Any])
# each entry keeps its state (~150 kB of account bytes) alive: a bound of 4096 made a 64-client swarm hold
# ~20 MB per client more; 256 is ~38 MB per process, room for each of 64 clients' current state, 3 functions
MAX_ENTRIES = 256
_MEMO: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()


def per_state(fn: F) -> F:
    """Cache `fn(state, *args)` per state object (kept referenced while cached, so its id is not reused)."""
    @functools.wraps(fn)
    def wrapper(state: Any, *args: Any) -> Any:
        raw = view(state).raw
        if not isinstance(getattr(raw, "_buf", None), bytes):
            return fn(state, *args)
        key = (fn, id(raw), args)
        hit = _MEMO.get(key)
        if hit is None or hit[0] is not raw:
            hit = _MEMO[key] = (raw, fn(state, *args))
            if len(_MEMO) > MAX_ENTRIES:  # least recently used first
                _MEMO.popitem(last=False)
        else:
            _MEMO.move_to_end(key)
        return copy.copy(hit[1])
    return wrapper  # type: ignore[return-value]
