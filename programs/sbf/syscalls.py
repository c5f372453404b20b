"""Syscalls a program may call by name. Anything else is refused at link time, because a real deploy
(reject_broken_elfs) fails on an unresolved symbol while LiteSVM's add_program would accept it."""
from programs.sbf.murmur3 import murmur3_32

# Registered by agave's runtime for SBPF v0 programs at deploy time (sol_alloc_free_ is dropped at deploy,
# feature-gated or deprecated ones such as sol_blake3 and sol_get_fees_sysvar are left out on purpose).
SYSCALLS: frozenset[str] = frozenset({
    "abort", "sol_panic_",
    "sol_log_", "sol_log_64_", "sol_log_compute_units_", "sol_log_pubkey", "sol_log_data",
    "sol_create_program_address", "sol_try_find_program_address",
    "sol_sha256", "sol_keccak256", "sol_curve_validate_point", "sol_secp256k1_recover",
    "sol_get_clock_sysvar", "sol_get_epoch_schedule_sysvar", "sol_get_rent_sysvar",
    "sol_memcpy_", "sol_memmove_", "sol_memcmp_", "sol_memset_",
    "sol_invoke_signed_c", "sol_invoke_signed_rust",
    "sol_set_return_data", "sol_get_return_data",
    "sol_get_stack_height", "sol_get_processed_sibling_instruction", "sol_remaining_compute_units",
})

# clang may emit calls to libc names for struct copies and zeroing; they map onto the runtime's versions.
ALIASES: dict[str, str] = {"memcpy": "sol_memcpy_", "memmove": "sol_memmove_", "memset": "sol_memset_"}


def resolve(name: str) -> str | None:
    """The registered syscall a symbol name stands for, or None if it is not one."""
    name = ALIASES.get(name, name)
    return name if name in SYSCALLS else None


def syscall_hashes() -> dict[int, str]:
    return {murmur3_32(name.encode()): name for name in SYSCALLS}
