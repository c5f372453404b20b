/*
 * Creating an account at a PDA of the calling program, shared by the coordinator and the treasurer.
 *
 * Anyone can send lamports to an address, and System CreateAccount refuses an address that holds any: a
 * squatter who pre-funds a future PDA (a user's Participant, a run id's Run or instance, a points record)
 * would block its creation for ever. So a target that holds lamports but no data and still belongs to the
 * System program is taken over the way the System program allows: transfer the shortfall, allocate, assign,
 * each signed by the PDA's seeds. A target with data or another owner is refused with the program's
 * AlreadyInitialized. Rent is the rent-exempt minimum at the default rent (a cluster with other rent
 * parameters makes the CPI fail, never under-funds).
 */
#ifndef PDA_CREATE_H
#define PDA_CREATE_H
#include "sol_sdk.h"

typedef struct {
    SolAccountInfo *payer, *target, *sys;
    uint64_t space;
    const SolSignerSeed *seeds;
    uint64_t n_seeds;
} PdaCreate;

/* The program's own error codes for the two refusals (BPF calls take at most 5 arguments). */
typedef struct {
    uint64_t not_system_program, already_initialized;
} PdaCreateErrors;

/* One System program instruction for the new PDA, signed by its seeds (and by the payer when it pays). */
static inline uint64_t pda_system_call(const SolParameters *p, const PdaCreate *req, const uint8_t *data, uint64_t len,
                                       bool with_payer) {
    SolAccountMeta metas[2] = {{req->payer->key, true, true}, {req->target->key, true, true}};
    SolInstruction ix = {req->sys->key, with_payer ? metas : metas + 1, with_payer ? 2 : 1, (uint8_t *)data, len};
    SolSignerSeeds signer = {req->seeds, req->n_seeds};
    return sol_invoke_signed_c(&ix, p->ka, p->ka_num, &signer, 1);
}

static inline uint64_t pda_create(const SolParameters *p, const PdaCreate *req, const PdaCreateErrors *errors) {
    SolAccountInfo *target = req->target;
    uint64_t space = req->space;
    if (!sol_is_system_program(req->sys->key)) return errors->not_system_program;
    if (target->data_len != 0) return errors->already_initialized;
    uint64_t lamports = (space + 128) * 6960, held = *target->lamports;
    uint8_t data[52];
    if (held == 0) {
        uint32_t create = 0;
        sol_memcpy(data, &create, 4);
        sol_memcpy(data + 4, &lamports, 8);
        sol_memcpy(data + 12, &space, 8);
        sol_memcpy(data + 20, p->program_id->x, 32);
        return pda_system_call(p, req, data, 52, true);
    }
    if (!sol_is_system_program(target->owner)) return errors->already_initialized;
    uint64_t err;
    if (held < lamports) {
        uint32_t transfer = 2;
        uint64_t shortfall = lamports - held;
        sol_memcpy(data, &transfer, 4);
        sol_memcpy(data + 4, &shortfall, 8);
        if ((err = pda_system_call(p, req, data, 12, true))) return err;
    }
    uint32_t allocate = 8, assign = 1;
    sol_memcpy(data, &allocate, 4);
    sol_memcpy(data + 4, &space, 8);
    if ((err = pda_system_call(p, req, data, 12, false))) return err;
    sol_memcpy(data, &assign, 4);
    sol_memcpy(data + 4, p->program_id->x, 32);
    return pda_system_call(p, req, data, 36, false);
}

#endif
