/*
 * hello: the smallest program that exercises everything the coordinator will need from the toolchain:
 * account data writes, logging, sha256, the Clock sysvar, a PDA-signed CPI to the System program,
 * return data, a .rodata pointer table, a cross-object call, and custom error codes.
 */
#include "hello.h"

static const char PDA_SEED[] = "hello";

static uint64_t require_writable_owned(const SolParameters *p, uint64_t i) {
    if (p->ka_num <= i) return HELLO_ERR_NOT_ENOUGH_ACCOUNTS;
    if (!p->ka[i].is_writable) return HELLO_ERR_NOT_WRITABLE;
    if (!sol_pubkey_eq(p->ka[i].owner, p->program_id)) return HELLO_ERR_WRONG_OWNER;
    return SOL_SUCCESS;
}

/* Copy the payload into the account, then log its FNV-1a (computed in the other object). */
SOL_NOINLINE static uint64_t do_write(const SolParameters *p, const uint8_t *args, uint64_t n) {
    uint64_t err = require_writable_owned(p, 0);
    if (err) return err;
    if (n > p->ka[0].data_len) return HELLO_ERR_PAYLOAD_TOO_BIG;
    sol_memcpy(p->ka[0].data, args, n);
    sol_log_u64(n, hello_fnv1a(args, n), 0, 0, 0);
    return SOL_SUCCESS;
}

/* sha256 of the payload in two slices: logged and handed back as return data. */
SOL_NOINLINE static uint64_t do_hash(const uint8_t *args, uint64_t n) {
    uint8_t digest[32];
    uint64_t half = n / 2;
    SolBytes parts[2] = {{args, half}, {args + half, n - half}};
    sol_sha256(parts, 2, digest);
    sol_set_return_data(digest, sizeof(digest));
    SolBytes event[1] = {{digest, sizeof(digest)}};
    sol_log_data(event, 1);
    return SOL_SUCCESS;
}

/* Write unix_timestamp then slot (both little-endian u64) into the account. */
SOL_NOINLINE static uint64_t do_clock(const SolParameters *p) {
    uint64_t err = require_writable_owned(p, 0);
    if (err) return err;
    if (p->ka[0].data_len < 16) return HELLO_ERR_PAYLOAD_TOO_BIG;
    SolClock clock;
    if (sol_get_clock_sysvar(&clock)) return SOL_ERR_INVALID_ARGUMENT;
    sol_memcpy(p->ka[0].data, &clock.unix_timestamp, 8);
    sol_memcpy(p->ka[0].data + 8, &clock.slot, 8);
    sol_log_u64((uint64_t)clock.unix_timestamp, clock.slot, 0, 0, 0);
    return SOL_SUCCESS;
}

/* Create the PDA ["hello", payer] owned by this program via System CreateAccount, signed by the PDA. */
SOL_NOINLINE static uint64_t do_create_pda(const SolParameters *p, const uint8_t *args, uint64_t n) {
    if (n != 16) return HELLO_ERR_BAD_ARGS;
    if (p->ka_num < 3) return HELLO_ERR_NOT_ENOUGH_ACCOUNTS;
    SolAccountInfo *payer = &p->ka[0], *pda = &p->ka[1], *sys = &p->ka[2];
    if (!payer->is_signer) return HELLO_ERR_MISSING_SIGNER;
    if (!payer->is_writable || !pda->is_writable) return HELLO_ERR_NOT_WRITABLE;
    if (!sol_is_system_program(sys->key)) return HELLO_ERR_NOT_SYSTEM_PROGRAM;

    SolSignerSeed seeds[3] = {{(const uint8_t *)PDA_SEED, sizeof(PDA_SEED) - 1}, {payer->key->x, 32}, {0, 1}};
    SolPubkey expected;
    uint8_t bump = 0;
    if (sol_find_pda(seeds, 2, p->program_id, &expected, &bump)) return HELLO_ERR_WRONG_PDA;
    if (!sol_pubkey_eq(&expected, pda->key)) return HELLO_ERR_WRONG_PDA;
    seeds[2].addr = &bump;

    uint8_t data[4 + 8 + 8 + 32];
    uint32_t create_account = 0;
    sol_memcpy(data, &create_account, 4);
    sol_memcpy(data + 4, args, 8);      /* lamports */
    sol_memcpy(data + 12, args + 8, 8); /* space */
    sol_memcpy(data + 20, p->program_id->x, 32); /* owner */
    SolAccountMeta metas[2] = {{payer->key, true, true}, {pda->key, true, true}};
    SolInstruction ix = {sys->key, metas, 2, data, sizeof(data)};
    SolSignerSeeds signer = {seeds, 3};
    uint64_t err = sol_invoke_signed_c(&ix, p->ka, p->ka_num, &signer, 1);
    if (err == 0) sol_set_return_data(&bump, 1); /* the bump sol_find_pda chose, for the tests to compare */
    return err;
}

uint64_t entrypoint(const uint8_t *input) {
    SolAccountInfo accounts[SOL_MAX_ACCOUNTS];
    SolParameters p = {.ka = accounts};
    if (!sol_deserialize(input, &p)) return SOL_ERR_INVALID_ARGUMENT;
    if (p.data_len == 0) return HELLO_ERR_NO_INSTRUCTION;

    uint8_t tag = p.data[0];
    uint64_t name_len = 0;
    const char *name = hello_instruction_name(tag, &name_len);
    sol_log_(name, name_len);
    const uint8_t *args = p.data + 1;
    uint64_t n = p.data_len - 1;
    switch (tag) {
        case HELLO_WRITE: return do_write(&p, args, n);
        case HELLO_HASH: return do_hash(args, n);
        case HELLO_CLOCK: return do_clock(&p);
        case HELLO_CREATE_PDA: return do_create_pda(&p, args, n);
        case HELLO_FAIL: return HELLO_ERR_DELIBERATE;
        default: return HELLO_ERR_UNKNOWN_INSTRUCTION;
    }
}
