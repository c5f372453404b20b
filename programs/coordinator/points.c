/* Banked points: when join_run gives a registry slot whose client holds points to a newcomer, the slot's
 * earned/slashed move to that wallet's ClientPoints PDA ["points", coordinator_account, signer] first, so a
 * full registry of past earners never locks a run (slots are reused) and nobody loses points. */
#include "coordinator.h"

static const uint8_t SEED_POINTS[] = {'p', 'o', 'i', 'n', 't', 's'};

static uint64_t add_saturating(uint64_t x, uint64_t y) { return x + y < x ? UINT64_MAX : x + y; }

/* The stored record at `acc` must be this program's ClientPoints of (coordinator account, signer), at the
 * address its stored bump gives (owner, size, discriminator, keys, PDA). */
static uint64_t check_existing(const SolParameters *p, const SolAccountInfo *acc, const SolPubkey *signer) {
    if (!sol_pubkey_eq(acc->owner, p->program_id) || acc->data_len != sizeof(ClientPoints))
        return E_WRONG_POINTS_ACCOUNT;
    const ClientPoints *cp = (const ClientPoints *)acc->data;
    if (cp->discriminator != DISC_CLIENT_POINTS || !sol_pubkey_eq(&cp->coordinator_account, p->ka[2].key) ||
        !sol_pubkey_eq(&cp->signer, signer))
        return E_WRONG_POINTS_ACCOUNT;
    uint8_t bump = cp->bump;
    SolSignerSeed seeds[4] = {{SEED_POINTS, sizeof(SEED_POINTS)}, {p->ka[2].key->x, 32}, {signer->x, 32}, {&bump, 1}};
    if (!sol_pda_matches(seeds, 4, p->program_id, acc->key))
        return E_WRONG_POINTS_ACCOUNT;
    return SOL_SUCCESS;
}

/* Bank registry slot `slot` (about to be reused) into the evictee's points PDA: accounts ka[6] (the PDA, w)
 * and ka[7] (the System program); the joiner (ka[0], then writable) pays the rent of a new one. A slot without
 * points needs neither. Penalties of a wallet with no points anywhere (no earned in the slot, no PDA yet) are
 * dropped with the slot, as before banking: there is nothing to penalise, and a joiner should not pay rent
 * to record them. */
uint64_t bank_points(const SolParameters *p, CoordinatorAccount *a, uint64_t slot) {
    const RegisteredClient *c = &a->clients[slot];
    if (c->earned == 0 && c->slashed == 0) return SOL_SUCCESS;
    if (p->ka_num < 8 || !p->ka[6].is_writable) return E_WRONG_POINTS_ACCOUNT;
    SolAccountInfo *acc = &p->ka[6];
    uint64_t err;
    if (acc->data_len == 0) {
        uint8_t bump;
        SolSignerSeed seeds[4] = {{SEED_POINTS, sizeof(SEED_POINTS)}, {p->ka[2].key->x, 32}, {c->signer.x, 32},
                                  {&bump, 1}};
        SolPubkey expected; /* the canonical bump only: a second record at another bump would split the points */
        if (sol_find_pda(seeds, 3, p->program_id, &expected, &bump) ||
            !sol_pubkey_eq(&expected, acc->key))
            return E_WRONG_POINTS_ACCOUNT;
        if (c->earned == 0) return SOL_SUCCESS;
        if (!p->ka[0].is_writable) return E_NOT_WRITABLE;
        PdaCreate req = {&p->ka[0], acc, &p->ka[7], sizeof(ClientPoints), seeds, 4};
        if ((err = create_pda(p, &req))) return err;
        ClientPoints *cp = (ClientPoints *)acc->data;
        cp->discriminator = DISC_CLIENT_POINTS;
        copy_key(&cp->coordinator_account, p->ka[2].key);
        copy_key(&cp->signer, &c->signer);
        cp->bump = bump;
    } else if ((err = check_existing(p, acc, &c->signer))) {
        return err;
    }
    ClientPoints *cp = (ClientPoints *)acc->data;
    cp->earned = add_saturating(cp->earned, c->earned);
    cp->slashed = add_saturating(cp->slashed, c->slashed);
    SolBytes event[4] = {{(const uint8_t *)"bank", 4}, {c->signer.x, 32}, {(const uint8_t *)&c->earned, 8},
                         {(const uint8_t *)&c->slashed, 8}};
    sol_log_data(event, 4);
    return SOL_SUCCESS;
}
