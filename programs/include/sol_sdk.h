/*
 * sol_sdk.h: our own minimal Solana C SDK for programs built with stock clang (-target bpf -mcpu=v2)
 * and linked by programs/sbf (SBPF v0). Header-only, no globals (the loader rejects .data/.bss).
 *
 * Why our own: it keeps the build free of the Solana platform tools, and it only declares syscalls that
 * our linker's whitelist knows, so an unknown name fails at link time rather than at deploy.
 */
#ifndef PSYCHE_SOL_SDK_H
#define PSYCHE_SOL_SDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- results ------------------------------------------------------------------------------------ */
/* Builtin program errors live in the upper 32 bits; a custom error is any non-zero u32 value. */
#define SOL_TO_BUILTIN(e) ((uint64_t)(e) << 32)
#define SOL_SUCCESS 0
#define SOL_ERR_INVALID_ARGUMENT SOL_TO_BUILTIN(2)
#define SOL_ERR_INVALID_INSTRUCTION_DATA SOL_TO_BUILTIN(3)
#define SOL_ERR_INVALID_ACCOUNT_DATA SOL_TO_BUILTIN(4)
#define SOL_ERR_ACCOUNT_DATA_TOO_SMALL SOL_TO_BUILTIN(5)
#define SOL_ERR_INSUFFICIENT_FUNDS SOL_TO_BUILTIN(6)
#define SOL_ERR_INCORRECT_PROGRAM_ID SOL_TO_BUILTIN(7)
#define SOL_ERR_MISSING_REQUIRED_SIGNATURES SOL_TO_BUILTIN(8)
#define SOL_ERR_ACCOUNT_ALREADY_INITIALIZED SOL_TO_BUILTIN(9)
#define SOL_ERR_UNINITIALIZED_ACCOUNT SOL_TO_BUILTIN(10)
#define SOL_ERR_NOT_ENOUGH_ACCOUNT_KEYS SOL_TO_BUILTIN(11)
#define SOL_ERR_MAX_SEED_LENGTH_EXCEEDED SOL_TO_BUILTIN(13)
#define SOL_ERR_INVALID_SEEDS SOL_TO_BUILTIN(14)

/* ---- core types --------------------------------------------------------------------------------- */
#define SOL_PUBKEY_BYTES 32
#define SOL_MAX_SEEDS 16
#define SOL_MAX_SEED_LEN 32
/* The runtime leaves this much writable slack after every account's data (realloc room). */
#define SOL_MAX_PERMITTED_DATA_INCREASE (10 * 1024)
/* Accounts this SDK deserializes at most (a program may define its own before including this header);
 * extra accounts are counted in ka_total but not parsed. Each SolAccountInfo is 56 bytes of a 512-byte
 * BPF stack frame, so keep this small. */
#ifndef SOL_MAX_ACCOUNTS
#define SOL_MAX_ACCOUNTS 6
#endif
#define SOL_NOINLINE __attribute__((noinline))

typedef struct { uint8_t x[SOL_PUBKEY_BYTES]; } SolPubkey;

typedef struct {
    SolPubkey *key;
    uint64_t *lamports;  /* points into the input buffer: writes move lamports */
    uint64_t data_len;
    uint8_t *data;
    SolPubkey *owner;
    uint64_t rent_epoch;
    bool is_signer;
    bool is_writable;
    bool executable;
} SolAccountInfo;

typedef struct {
    SolAccountInfo *ka;  /* caller-provided array of SOL_MAX_ACCOUNTS entries */
    uint64_t ka_num;     /* accounts actually filled in (<= SOL_MAX_ACCOUNTS) */
    uint64_t ka_total;   /* accounts the transaction passed */
    const uint8_t *data;
    uint64_t data_len;
    const SolPubkey *program_id;
} SolParameters;

typedef struct { const uint8_t *addr; uint64_t len; } SolBytes;
typedef SolBytes SolSignerSeed;
typedef struct { const SolSignerSeed *addr; uint64_t len; } SolSignerSeeds;

typedef struct { SolPubkey *pubkey; bool is_writable; bool is_signer; } SolAccountMeta;
typedef struct {
    SolPubkey *program_id;
    SolAccountMeta *accounts;
    uint64_t account_len;
    uint8_t *data;
    uint64_t data_len;
} SolInstruction;

typedef struct {
    uint64_t slot;
    int64_t epoch_start_timestamp;
    uint64_t epoch;
    uint64_t leader_schedule_epoch;
    int64_t unix_timestamp;
} SolClock;

/* ---- syscalls (resolved by name through R_BPF_64_32; the linker checks the names) ---------------- */
void sol_log_(const char *msg, uint64_t len);
void sol_log_64_(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e);
void sol_log_pubkey(const SolPubkey *key);
void sol_log_compute_units_(void);
void sol_log_data(const SolBytes *fields, uint64_t count);
uint64_t sol_sha256(const SolBytes *vals, uint64_t count, uint8_t *result32);
/* 0 when `point` is a valid compressed point of curve `curve_id` (0 = edwards25519), 1 when not; `result` is
 * unused by the runtime (159 CU). */
uint64_t sol_curve_validate_point(uint64_t curve_id, const uint8_t *point, uint8_t *result);
uint64_t sol_get_clock_sysvar(SolClock *out);
uint64_t sol_create_program_address(const SolSignerSeed *seeds, uint64_t n, const SolPubkey *program_id,
                                    SolPubkey *out);
uint64_t sol_try_find_program_address(const SolSignerSeed *seeds, uint64_t n, const SolPubkey *program_id,
                                      SolPubkey *out, uint8_t *bump);
uint64_t sol_invoke_signed_c(const SolInstruction *ix, const SolAccountInfo *infos, uint64_t n_infos,
                             const SolSignerSeeds *signers, uint64_t n_signers);
void sol_set_return_data(const uint8_t *data, uint64_t len);
uint64_t sol_get_return_data(uint8_t *data, uint64_t len, SolPubkey *program_id);
void sol_memcpy_(void *dst, const void *src, uint64_t n);
void sol_memmove_(void *dst, const void *src, uint64_t n);
void sol_memset_(void *dst, uint8_t c, uint64_t n);
void sol_memcmp_(const void *a, const void *b, uint64_t n, int32_t *result);
void sol_panic_(const char *file, uint64_t len, uint64_t line, uint64_t column);

/* ---- small helpers ------------------------------------------------------------------------------ */
#define sol_log(s) sol_log_((s), sizeof(s) - 1)
#define sol_log_u64(a, b, c, d, e) sol_log_64_((a), (b), (c), (d), (e))
#define sol_assert_static(cond, name) typedef char static_assert_##name[(cond) ? 1 : -1]

static inline void sol_memcpy(void *dst, const void *src, uint64_t n) { sol_memcpy_(dst, src, n); }
static inline void sol_memset(void *dst, uint8_t c, uint64_t n) { sol_memset_(dst, c, n); }
static inline bool sol_memeq(const void *a, const void *b, uint64_t n) {
    int32_t r = 0;
    sol_memcmp_(a, b, n, &r);
    return r == 0;
}
/* Four 64-bit compares: much cheaper than the memcmp syscall inside the scans programs do over keys.
 * (SBPF allows unaligned loads, so this is safe for keys anywhere in account or instruction data.) */
static inline bool sol_pubkey_eq(const SolPubkey *a, const SolPubkey *b) {
    const uint64_t *x = (const uint64_t *)a->x, *y = (const uint64_t *)b->x;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* Is `key` the program address of `seeds` (bump included) under `program_id`? The hash that
 * sol_create_program_address computes, sha256(seeds | program_id | "ProgramDerivedAddress"), compared with
 * the key (~150 CU instead of that syscall's 1,500). The syscall's one extra step, refusing a hash that lies
 * on the ed25519 curve, decides which addresses may be *chosen* and was done when the account was created
 * (sol_find_pda picked its bump); to recognise an existing account the hash comparison is
 * the whole check. At most 5 seeds (the bump included). */
static inline bool sol_pda_matches(const SolSignerSeed *seeds, uint64_t n, const SolPubkey *program_id,
                                   const SolPubkey *key) {
    static const uint8_t marker[] = {'P', 'r', 'o', 'g', 'r', 'a', 'm', 'D', 'e', 'r', 'i', 'v', 'e',
                                     'd', 'A', 'd', 'd', 'r', 'e', 's', 's'};
    if (n > 5) return false;
    SolBytes parts[7];
    for (uint64_t i = 0; i < n; i++) {
        if (seeds[i].len > SOL_MAX_SEED_LEN) return false;
        parts[i] = seeds[i];
    }
    parts[n].addr = program_id->x;
    parts[n].len = SOL_PUBKEY_BYTES;
    parts[n + 1].addr = marker;
    parts[n + 1].len = sizeof(marker);
    SolPubkey hash;
    if (sol_sha256(parts, n + 2, hash.x)) return false;
    return sol_pubkey_eq(&hash, key);
}

#define SOL_CURVE25519_EDWARDS 0

/* The canonical program address of `seeds` under `program_id` and its bump: exactly what
 * sol_try_find_program_address returns (bumps 255 down to 1, the first whose hash
 * sha256(seeds | bump | program_id | "ProgramDerivedAddress") is NOT an edwards25519 point), computed from the
 * sha256 and curve-validation syscalls: ~350 CU per bump tried instead of that syscall's 1,500, so a wallet
 * whose canonical bump is low no longer costs thousands of CU more. Returns 0 on success, 1 when no bump
 * qualifies or the seeds are unusable (more than 4, or one longer than 32 bytes). Not inlined: one copy per
 * program, and its ~200 bytes of stack stay out of the callers' frames. */
static inline SOL_NOINLINE uint64_t sol_find_pda(const SolSignerSeed *seeds, uint64_t n,
                                                 const SolPubkey *program_id, SolPubkey *out, uint8_t *bump) {
    static const uint8_t marker[] = {'P', 'r', 'o', 'g', 'r', 'a', 'm', 'D', 'e', 'r', 'i', 'v', 'e',
                                     'd', 'A', 'd', 'd', 'r', 'e', 's', 's'};
    if (n > 4) return 1;
    SolBytes parts[7];
    for (uint64_t i = 0; i < n; i++) {
        if (seeds[i].len > SOL_MAX_SEED_LEN) return 1;
        parts[i] = seeds[i];
    }
    uint8_t b = 255;
    parts[n].addr = &b;
    parts[n].len = 1;
    parts[n + 1].addr = program_id->x;
    parts[n + 1].len = SOL_PUBKEY_BYTES;
    parts[n + 2].addr = marker;
    parts[n + 2].len = sizeof(marker);
    for (; b > 0; b--) {
        if (sol_sha256(parts, n + 3, out->x)) return 1;
        uint8_t unused;
        if (sol_curve_validate_point(SOL_CURVE25519_EDWARDS, out->x, &unused) != 0) {
            *bump = b;
            return 0;
        }
    }
    return 1;
}

/* Unaligned little-endian readers for instruction data (the VM allows unaligned loads; these keep the
 * intent explicit and avoid strict-aliasing surprises). */
static inline uint64_t sol_read_u64(const uint8_t *p) {
    uint64_t v;
    sol_memcpy_(&v, p, 8);
    return v;
}
static inline uint32_t sol_read_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint16_t sol_read_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Checked arithmetic: return false on overflow instead of wrapping. */
static inline bool sol_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline bool sol_sub_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_sub_overflow(a, b, out);
}
static inline bool sol_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    /* Not __builtin_mul_overflow (nor `b > MAX / a`, which LLVM turns into it): for u64 that needs a
     * 128-bit multiply (__multi3), which the BPF backend cannot call. Schoolbook on 32-bit halves instead. */
    uint64_t a1 = a >> 32, a0 = a & 0xffffffffULL, b1 = b >> 32, b0 = b & 0xffffffffULL;
    if (a1 && b1) return false;
    uint64_t cross = a1 * b0 + a0 * b1; /* one term is zero, the other < 2^64 */
    if (cross >> 32) return false;
    uint64_t low = a0 * b0, hi = cross << 32;
    if (low + hi < low) return false;
    *out = low + hi;
    return true;
}

/* The heap region: 32 KiB of zeroed scratch per invocation, no allocator. Use for data too big for the
 * 512-byte BPF stack frame; each user takes a fixed, disjoint offset. */
#define SOL_HEAP_START ((uint8_t *)0x300000000ULL)
#define SOL_HEAP_SIZE (32 * 1024)

/* ---- input deserialization ---------------------------------------------------------------------- */
/*
 * Parses the loader's aligned input format (BPF loader v2/v3):
 *   u64 n_accounts; per account: u8 dup_index (0xff = new), then either 7 pad bytes (duplicate) or
 *   u8 signer, u8 writable, u8 executable, 4 pad, pubkey[32], owner[32], u64 lamports, u64 data_len,
 *   data[data_len], MAX_PERMITTED_DATA_INCREASE slack, pad to 8, u64 rent_epoch;
 *   then u64 data_len, data, program_id[32].
 * Pointers point into the input buffer, so writes go straight to the accounts.
 * Returns false on a malformed duplicate index (never happens with a real runtime).
 */
static inline bool sol_deserialize(const uint8_t *input, SolParameters *params) {
    uint64_t n = *(const uint64_t *)input;
    input += sizeof(uint64_t);
    params->ka_total = n;
    params->ka_num = n < SOL_MAX_ACCOUNTS ? n : SOL_MAX_ACCOUNTS;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t dup = *input;
        input += 1;
        if (dup == UINT8_MAX) {
            SolAccountInfo info;
            info.is_signer = *input != 0;
            input += 1;
            info.is_writable = *input != 0;
            input += 1;
            info.executable = *input != 0;
            input += 1;
            input += 4; /* padding */
            info.key = (SolPubkey *)input;
            input += sizeof(SolPubkey);
            info.owner = (SolPubkey *)input;
            input += sizeof(SolPubkey);
            info.lamports = (uint64_t *)input;
            input += sizeof(uint64_t);
            info.data_len = *(const uint64_t *)input;
            input += sizeof(uint64_t);
            info.data = (uint8_t *)input;
            input += info.data_len + SOL_MAX_PERMITTED_DATA_INCREASE;
            input = (const uint8_t *)(((uint64_t)input + 7) & ~(uint64_t)7);
            info.rent_epoch = *(const uint64_t *)input;
            input += sizeof(uint64_t);
            if (i < SOL_MAX_ACCOUNTS) params->ka[i] = info;
        } else {
            input += 7; /* padding */
            if (dup >= i) return false;
            if (i < SOL_MAX_ACCOUNTS) params->ka[i] = params->ka[dup];
        }
    }
    params->data_len = *(const uint64_t *)input;
    input += sizeof(uint64_t);
    params->data = input;
    input += params->data_len;
    params->program_id = (const SolPubkey *)input;
    return true;
}

/* The System program id (all zero bytes). */
static inline bool sol_is_system_program(const SolPubkey *key) {
    for (int i = 0; i < SOL_PUBKEY_BYTES; i++)
        if (key->x[i] != 0) return false;
    return true;
}

#endif /* PSYCHE_SOL_SDK_H */
