"""SPL token RPC methods (getTokenAccountBalance, getTokenAccountsByOwner/ByDelegate, getTokenSupply,
getTokenLargestAccounts), answered from the token program accounts the chain holds, in the shapes a
validator sends."""
from __future__ import annotations

from solders.pubkey import Pubkey

from localnet import spl_token
from localnet.chain import RpcError
from localnet.encoding import account_json, parse_pubkey
from localnet.rpc_params import Params, param


class TokenMethods(Params):
    def _mint(self, key: Pubkey) -> spl_token.Mint:
        m = spl_token.mint(self.chain.get_account(key))
        if m is None:
            raise RpcError(-32602, "Invalid param: not a Token mint")
        return m

    def m_getTokenAccountBalance(self, params: list) -> dict:
        ta = spl_token.token_account(self.chain.get_account(parse_pubkey(param(params, 0, "token account"))))
        if ta is None:
            raise RpcError(-32602, "Invalid param: not a Token account")
        return self._ctx(spl_token.ui_amount(ta.amount, self._mint(ta.mint).decimals))

    def m_getTokenSupply(self, params: list) -> dict:
        m = self._mint(parse_pubkey(param(params, 0, "mint")))
        return self._ctx(spl_token.ui_amount(m.supply, m.decimals))

    def m_getTokenLargestAccounts(self, params: list) -> dict:
        key = parse_pubkey(param(params, 0, "mint"))
        m = self._mint(key)
        self._cfg(params, 1)
        holders = []
        for program in spl_token.TOKEN_PROGRAMS:
            for addr, acc in self.chain.program_accounts(program):
                ta = spl_token.token_account(acc)
                if ta is not None and ta.mint == key:
                    holders.append((ta.amount, str(addr)))
        holders.sort(key=lambda h: (-h[0], h[1]))
        return self._ctx([{"address": addr, **spl_token.ui_amount(amount, m.decimals)}
                          for amount, addr in holders[:20]])

    def m_getTokenAccountsByOwner(self, params: list) -> dict:
        return self._by_role(params, "owner")

    def m_getTokenAccountsByDelegate(self, params: list) -> dict:
        return self._by_role(params, "delegate")

    def _by_role(self, params: list, role: str) -> dict:
        who = parse_pubkey(param(params, 0, role), role)
        flt = param(params, 1, "filter ({mint} or {programId})")
        if not isinstance(flt, dict) or len(flt) != 1 or not ({"mint", "programId"} & flt.keys()):
            raise RpcError(-32602, "Invalid params: the filter must be {\"mint\": ...} or {\"programId\": ...}")
        cfg = self._cfg(params, 2)
        want_mint = None
        programs = list(spl_token.TOKEN_PROGRAMS)
        if "mint" in flt:
            want_mint = parse_pubkey(flt["mint"], "mint")
            mint_acc = self.chain.get_account(want_mint)
            if spl_token.mint(mint_acc) is None:
                raise RpcError(-32602, "Invalid param: could not find mint")
            programs = [mint_acc.owner]
        else:
            program = parse_pubkey(flt["programId"], "programId")
            if program not in spl_token.TOKEN_PROGRAMS:
                raise RpcError(-32602, "Invalid param: unrecognized Token program id")
            programs = [program]
        out = []
        for program in programs:
            for addr, acc in self.chain.program_accounts(program):
                ta = spl_token.token_account(acc)
                if ta is None or getattr(ta, role) != who or (want_mint is not None and ta.mint != want_mint):
                    continue
                out.append({"pubkey": str(addr), "account": account_json(acc, cfg.get("encoding", "base64"),
                                                                         cfg.get("dataSlice"), chain=self.chain)})
        return self._ctx(out)
