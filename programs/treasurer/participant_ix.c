/* participant_create and participant_claim: a user's claim record and the claim itself. */
#include "treasurer.h"

static uint64_t participant_find(const SolPubkey *run, const SolPubkey *user, const SolPubkey *program_id,
                                 SolPubkey *out, uint8_t *bump) {
    SolSignerSeed seeds[3] = {{(const uint8_t *)"Participant", 11}, {run->x, 32}, {user->x, 32}};
    return sol_find_pda(seeds, 3, program_id, out, bump);
}

/* participant_create(): accounts: user (signer, w, pays), run, participant (w), system_program */
uint64_t ix_participant_create(const SolParameters *p, Args *args) {
    if (!args_done(args)) return T_INVALID_INSTRUCTION;
    uint64_t err = require_signer(p, 0);
    if (err) return err;
    if (p->ka_num < 4) return T_NOT_ENOUGH_ACCOUNTS;
    Run *run;
    if ((err = load_run(p, 1, &run))) return err;
    SolAccountInfo *user = &p->ka[0], *part = &p->ka[2];
    if (!user->is_writable || !part->is_writable) return T_NOT_WRITABLE;
    SolPubkey expected;
    uint8_t bump;
    if (participant_find(p->ka[1].key, user->key, p->program_id, &expected, &bump) ||
        !sol_pubkey_eq(&expected, part->key))
        return T_INVALID_PDA;
    SolSignerSeed seeds[4] = {{(const uint8_t *)"Participant", 11}, {p->ka[1].key->x, 32}, {user->key->x, 32},
                              {&bump, 1}};
    PdaCreate req = {user, part, &p->ka[3], sizeof(Participant), seeds, 4};
    if ((err = create_pda(p, &req))) return err;
    Participant *pt = (Participant *)part->data;
    pt->discriminator = DISC_PARTICIPANT;
    pt->bump = bump;
    pt->run = *p->ka[1].key;
    pt->user = *user->key;
    return SOL_SUCCESS;
}

/* The participant record at account i for (run, user): owner, size, discriminator, stored keys, PDA. */
static uint64_t load_participant(const SolParameters *p, uint64_t i, const SolPubkey *run, const SolPubkey *user,
                                 Participant **out) {
    SolAccountInfo *acc = &p->ka[i];
    if (!sol_pubkey_eq(acc->owner, p->program_id)) return T_WRONG_OWNER;
    if (acc->data_len != sizeof(Participant)) return T_WRONG_ACCOUNT_SIZE;
    Participant *pt = (Participant *)acc->data;
    if (pt->discriminator != DISC_PARTICIPANT) return T_WRONG_DISCRIMINATOR;
    if (!sol_pubkey_eq(&pt->run, run) || !sol_pubkey_eq(&pt->user, user)) return T_INVALID_PDA;
    SolSignerSeed seeds[4] = {{(const uint8_t *)"Participant", 11}, {run->x, 32}, {user->x, 32}, {&pt->bump, 1}};
    if (!sol_pda_matches(seeds, 4, p->program_id, acc->key)) return T_INVALID_PDA;
    *out = pt;
    return SOL_SUCCESS;
}

/* participant_claim(points: u64): pays points x collateral_per_point from the vault to the user's token
 * account. Claimable = earned - slashed (penalties) - already claimed, where earned and slashed are the user's
 * registry slot in the run's coordinator account plus, when given, its banked points (the coordinator's
 * ClientPoints PDA, filled when a newcomer took the user's slot). Points only move from slot to bank, so the
 * sum never counts one twice; leaving the bank out only lowers what is claimable.
 * accounts: user (signer), run (w), participant (w), coordinator_account, run_collateral (w),
 *           user_collateral (w), collateral_mint, token_program, [points PDA] */
uint64_t ix_participant_claim(const SolParameters *p, Args *args) {
    uint64_t points = args_u64(args);
    if (!args_done(args)) return T_INVALID_INSTRUCTION;
    uint64_t err = require_signer(p, 0);
    if (err) return err;
    if (p->ka_num < 8) return T_NOT_ENOUGH_ACCOUNTS;
    SolAccountInfo *user = &p->ka[0], *run_acc = &p->ka[1], *vault = &p->ka[4], *dest = &p->ka[5], *mint = &p->ka[6];
    Run *run;
    Participant *pt;
    if ((err = load_run(p, 1, &run))) return err;
    if ((err = load_participant(p, 2, run_acc->key, user->key, &pt))) return err;
    if (!run_acc->is_writable || !p->ka[2].is_writable || !vault->is_writable || !dest->is_writable)
        return T_NOT_WRITABLE;
    if ((err = check_token_program(&p->ka[7]))) return err;
    if (!sol_pubkey_eq(mint->key, &run->collateral_mint)) return T_WRONG_MINT;
    uint8_t decimals;
    if ((err = check_mint(mint, &decimals))) return err;
    if (!sol_pubkey_eq(vault->key, &run->collateral_vault)) return T_ACCOUNT_MISMATCH;
    uint64_t earned = 0, slashed = 0, vault_amount = 0, dest_amount = 0;
    err = coordinator_points(&p->ka[3], run, user->key, &earned, &slashed);
    if (err && !(err == T_NOT_A_CLIENT && p->ka_num > 8)) return err; /* evicted: its points are all banked */
    if (p->ka_num > 8 && (err = banked_points(&p->ka[8], run, user->key, &earned, &slashed))) return err;
    if ((err = check_token_account(vault, &run->collateral_mint, run_acc->key, &vault_amount))) return err;
    if ((err = check_token_account(dest, &run->collateral_mint, user->key, &dest_amount))) return err;
    if (points == 0) return T_NOTHING_TO_CLAIM;
    uint64_t net = earned > slashed ? earned - slashed : 0;
    uint64_t claimable = net > pt->claimed_earned_points ? net - pt->claimed_earned_points : 0;
    if (points > claimable) return T_CLAIM_EXCEEDS_EARNED;
    uint64_t amount, part_points, part_amount, run_points, run_amount;
    if (!sol_mul_u64(points, run->collateral_per_point, &amount) ||
        !sol_add_u64(pt->claimed_earned_points, points, &part_points) ||
        !sol_add_u64(pt->claimed_collateral_amount, amount, &part_amount) ||
        !sol_add_u64(run->total_claimed_earned_points, points, &run_points) ||
        !sol_add_u64(run->total_claimed_collateral_amount, amount, &run_amount))
        return T_ARITHMETIC_OVERFLOW;
    if (vault_amount < amount) {
        sol_log_u64(vault_amount, amount, 0, 0, 0);
        return T_VAULT_UNDERFUNDED;
    }
    uint8_t bump = run->bump;
    SolSignerSeed seeds[3] = {{(const uint8_t *)"Run", 3}, {(const uint8_t *)&run->index, 8}, {&bump, 1}};
    SolSignerSeeds signer = {seeds, 3};
    SignedTransfer transfer = {vault, mint, dest, run_acc, amount, decimals, &signer};
    if ((err = transfer_checked_signed(p, &transfer))) return err;
    pt->claimed_earned_points = part_points;
    pt->claimed_collateral_amount = part_amount;
    run->total_claimed_earned_points = run_points;
    run->total_claimed_collateral_amount = run_amount;
    return SOL_SUCCESS;
}
