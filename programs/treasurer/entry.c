/* Entrypoint: deserialize (account infos on the heap), dispatch on the 8-byte Anchor discriminator. */
#include "treasurer.h"

uint64_t entrypoint(const uint8_t *input) {
    SolParameters p = {.ka = (SolAccountInfo *)(SOL_HEAP_START + HEAP_ACCOUNTS)};
    if (!sol_deserialize(input, &p)) return SOL_ERR_INVALID_ARGUMENT;
    if (p.data_len < 8) return T_INVALID_INSTRUCTION;
    Args args = {p.data + 8, p.data_len - 8, 0, false};
    switch (sol_read_u64(p.data)) {
        case IX_RUN_CREATE: return ix_run_create(&p, &args);
        case IX_RUN_UPDATE: return ix_run_update(&p, &args);
        case IX_PARTICIPANT_CREATE: return ix_participant_create(&p, &args);
        case IX_PARTICIPANT_CLAIM: return ix_participant_claim(&p, &args);
        default: return T_INVALID_INSTRUCTION;
    }
}
