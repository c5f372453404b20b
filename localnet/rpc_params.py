"""Parameter helpers shared by the RPC method groups: positional params, config objects with
`minContextSlot` enforced, and the `{"context", "value"}` envelope."""
from __future__ import annotations

from localnet.chain import Chain, RpcError

API_VERSION = "2.1.0"


def param(params: list, i: int, what: str, default: object = ...) -> object:
    if i < len(params) and params[i] is not None:
        return params[i]
    if default is ...:
        raise RpcError(-32602, f"Invalid params: missing {what} (parameter {i})")
    return default


def int_param(params: list, i: int, what: str, default: object = ..., lo: int = 0, hi: int = 2**63) -> int:
    value = param(params, i, what, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RpcError(-32602, f"Invalid params: {what} {value!r} is not an integer or outside {lo}..{hi}")
    return value


class Params:
    """Base of the method groups: the chain and the helpers every handler uses."""

    chain: Chain

    def _cfg(self, params: list, i: int) -> dict:
        """Parameter i as a config object; a `minContextSlot` ahead of the chain is refused as on a validator."""
        cfg = param(params, i, "config", {})
        if not isinstance(cfg, dict):
            raise RpcError(-32602, f"Invalid params: parameter {i} must be a config object")
        min_slot = cfg.get("minContextSlot")
        if min_slot is not None:
            if isinstance(min_slot, bool) or not isinstance(min_slot, int):
                raise RpcError(-32602, f"Invalid params: minContextSlot must be an integer, not {min_slot!r}")
            if min_slot > self.chain.slot:
                raise RpcError(-32016, "Minimum context slot has not been reached", {"contextSlot": self.chain.slot})
        return cfg

    def _ctx(self, value: object) -> dict:
        return {"context": {"slot": self.chain.slot, "apiVersion": API_VERSION}, "value": value}
