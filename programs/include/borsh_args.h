/* Borsh-style instruction argument reading shared by our programs: every read is bounds-checked, a short
 * read marks the arguments bad, and `args_done` also refuses trailing bytes. */
#ifndef BORSH_ARGS_H
#define BORSH_ARGS_H
#include "sol_sdk.h"

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
#endif
