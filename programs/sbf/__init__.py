"""Our own SBF linker: clang BPF object files in, an SBPF v0 shared object the Solana loader accepts out.

Why: it lets us build real on-chain programs from C with stock Debian clang, with no Solana platform tools.
The loader rules it satisfies are listed in ../shared/reference/sbf-toolchain.md.
"""
from programs.sbf.errors import LinkError
from programs.sbf.linker import link, link_files

__all__ = ["LinkError", "link", "link_files"]
