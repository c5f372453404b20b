/* Borsh-style argument reading: every read is bounds-checked; trailing bytes are an error too. */
#ifndef ARGS_H
#define ARGS_H
#include "coordinator.h"

typedef struct {
    const uint8_t *data;
    uint64_t len, pos;
    bool bad;
} Args;

static inline const uint8_t *args_take(Args *a, uint64_t n) {
    if (a->bad || a->len - a->pos < n) {
        a->bad = true;
        return 0;
    }
    const uint8_t *p = a->data + a->pos;
    a->pos += n;
    return p;
}
static inline uint64_t args_u64(Args *a) {
    const uint8_t *p = args_take(a, 8);
    return p ? sol_read_u64(p) : 0;
}
static inline uint16_t args_u16(Args *a) {
    const uint8_t *p = args_take(a, 2);
    return p ? sol_read_u16(p) : 0;
}
static inline uint8_t args_u8(Args *a) {
    const uint8_t *p = args_take(a, 1);
    return p ? *p : 0;
}
/* A borsh string (u32 length + bytes) of at most `max` bytes; *len gets its length. */
static inline const uint8_t *args_string(Args *a, uint64_t max, uint64_t *len, bool *too_long) {
    const uint8_t *lp = args_take(a, 4);
    if (!lp) return 0;
    *len = sol_read_u32(lp);
    if (*len > max) {
        *too_long = true;
        return 0;
    }
    return args_take(a, *len);
}
static inline bool args_done(const Args *a) { return !a->bad && a->pos == a->len; }
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
