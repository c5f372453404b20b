/* The coordinator's argument readers beyond the shared borsh ones (programs/include/borsh_args.h). */
#ifndef ARGS_H
#define ARGS_H
#include "coordinator.h"
#include "borsh_args.h"

/* The whole argument list of checkpoint / set_checkpoint: one string of at most CHECKPOINT_MAX bytes. */
static inline uint64_t args_checkpoint(Args *a, const uint8_t **ref, uint64_t *len) {
    bool too_long = false;
    *len = 0;
    *ref = args_string(a, CHECKPOINT_MAX, len, &too_long);
    if (too_long) return E_STRING_TOO_LONG;
    return args_done(a) ? SOL_SUCCESS : E_INVALID_INSTRUCTION;
}
/* The run's checkpoint reference becomes `ref`, zero-padded (no tail of a longer predecessor stays). */
static inline void store_checkpoint(CoordinatorAccount *acc, const uint8_t *ref, uint64_t len) {
    sol_memset(acc->checkpoint, 0, sizeof(acc->checkpoint));
    sol_memcpy(acc->checkpoint, ref, len);
    acc->checkpoint_len = (uint8_t)len;
}
#endif
