/* A pointer table in .rodata (R_BPF_64_ABS64 -> R_BPF_64_RELATIVE) and a helper called from hello.c. */
#include "hello.h"

static const char *const NAMES[HELLO_COUNT] = {"write", "hash", "clock", "create_pda", "fail"};
static const uint8_t NAME_LENS[HELLO_COUNT] = {5, 4, 5, 10, 4};

const char *hello_instruction_name(uint8_t tag, uint64_t *len) {
    if (tag >= HELLO_COUNT) {
        *len = 7;
        return "unknown";
    }
    *len = NAME_LENS[tag];
    return NAMES[tag];
}

uint32_t hello_fnv1a(const uint8_t *data, uint64_t len) {
    uint32_t h = 2166136261u;
    for (uint64_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 16777619u;
    }
    return h;
}
