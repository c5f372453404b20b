/* verdict (issue 25): a verifier posts what its recomputation of one trainer's result of a kept round found.
 *
 * Who verifies whom: verifier v checks trainer t's result of round H when
 *     u64le(sha256(seed(H + 1) u64 LE || v.p2p || t.p2p)[:8]) % (clients_len(H) * 1000) < config.verifiers_per_mille
 * (v != t): about verifiers_per_mille / 1000 verifiers per trainer and round (0: none), drawn by the seed of the round after H, which nobody
 * knew when H was trained; one hash on chain, the same on every client (coordinator_sdk.verdicts).
 * Conviction: a trainer whose result of round H drew fails >= 2 and fails > passes, or whose results of this
 * epoch together drew epoch_fails >= 2 and epoch_fails > epoch_passes (so a low verifiers_per_mille, ~one
 * verdict per trainer every few rounds, still convicts a persistent cheater; the epoch's first accuser's later
 * fails are not counted, so two distinct verifiers are needed), is Ejected at once (so it
 * earns nothing for the epoch: only healthy clients are paid at its end) and slashed slashing_rate. One verifier
 * alone convicts nobody. Vindication: when a pass verdict brings passes >= 2 and passes > fails for a trainer
 * that was not convicted, the first verifier that said fail for that result is slashed slashing_rate, once. It
 * stays per result: an accuser is penalised only when passes outnumber fails on the very result it judged,
 * never for a cheater's honest rounds elsewhere in the epoch.
 * A verdict on a result the signer was not drawn for is refused (NotAVerifier): it gains nothing. */
#include "args.h"

#define VERDICT_PASS 1

static uint64_t add_saturating(uint64_t x, uint64_t y) { return x + y < x ? UINT64_MAX : x + y; }

/* Ring slot `j` now holds a new round: the verdict tallies of the round it held (4 heights ago) are dropped. */
void clear_tallies(CoordinatorAccount *a, uint32_t j) {
    for (uint32_t i = 0; i < a->num_epoch_clients && i < MAX_CLIENTS; i++) {
        EpochClient *c = &a->epoch_clients[i];
        c->fails[j] = c->passes[j] = 0;
        c->accuser[j] = 0;
    }
}

static bool eligible(uint64_t seed, const SolPubkey *verifier, const SolPubkey *trainer, uint32_t clients_len,
                     uint16_t per_mille) {
    uint8_t digest[32];
    SolBytes parts[3] = {{(const uint8_t *)&seed, 8}, {verifier->x, 32}, {trainer->x, 32}};
    sol_sha256(parts, 3, digest);
    return clients_len > 0 && load_u64(digest) % ((uint64_t)clients_len * 1000) < per_mille;
}

static void slash(CoordinatorAccount *a, RegisteredClient *reg) {
    if (reg) reg->slashed = add_saturating(reg->slashed, a->slashing_rate);
}

/* The registry entry of the accuser named by registry slot `slot`, only while that slot still holds a wallet of
 * this epoch's lists at that slot (in the epoch or exited): a newcomer that took a leaver's slot is not it. */
static RegisteredClient *accuser_entry(CoordinatorAccount *a, uint32_t slot) {
    if (slot >= a->num_clients || slot >= MAX_CLIENTS) return 0;
    RegisteredClient *reg = &a->clients[slot];
    const EpochClient *lists[2] = {a->epoch_clients, a->exited_clients};
    uint32_t lens[2] = {a->num_epoch_clients, a->num_exited_clients};
    for (uint32_t l = 0; l < 2; l++)
        for (uint32_t i = 0; i < lens[l] && i < MAX_CLIENTS; i++)
            if (lists[l][i].registry_index == slot && sol_pubkey_eq(&lists[l][i].signer, &reg->signer)) return reg;
    return 0;
}

/* verdict(trainer_index u16, trainer_p2p[32], height u32, outcome u8 (0 fail, 1 pass), result_hash[32],
 * ef_hash[32]): trainer_index is the trainer's current epoch-client index and trainer_p2p its P2P key, which must
 * be the key at that index (WrongTrainer): the epoch list is compacted at every round's end (leavers move to the
 * exited list), so an index read before a compaction names another client after it, and a verifier's fail on a
 * cheater would land on an honest trainer (seen under load). The hashes are evidence (logged, not stored). */
uint64_t ix_verdict(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_client(p, &ctx, 3);
    if (err) return err;
    uint16_t trainer_i = args_u16(args);
    const uint8_t *named = args_take(args, 32);
    const uint8_t *h = args_take(args, 4);
    uint8_t outcome = args_u8(args);
    const uint8_t *result = args_take(args, 32), *ef = args_take(args, 32);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    if (outcome > VERDICT_PASS) return E_INVALID_ARGUMENT;
    CoordinatorAccount *a = ctx.acc;
    if (is_halted(a)) return E_HALTED;
    if (a->run_state != RS_ROUND_TRAIN && a->run_state != RS_ROUND_WITNESS && a->run_state != RS_COOLDOWN)
        return E_WRONG_STATE;
    int64_t vi;
    if ((err = healthy_epoch_client(&ctx, &vi))) return err;
    if (trainer_i >= a->num_epoch_clients) return E_NOT_AN_EPOCH_CLIENT;
    if (!sol_pubkey_eq(&a->epoch_clients[trainer_i].p2p, (const SolPubkey *)named)) return E_WRONG_TRAINER;
    uint32_t height = sol_read_u32(h), current = a->rounds[a->rounds_head].height;
    /* kept: round height + 1 began (its seed draws the verifiers) and round height is still in the ring */
    if (height >= current || current - height >= NUM_ROUNDS) return E_STALE_ROUND;
    uint32_t j = height % NUM_ROUNDS;
    const Round *r = &a->rounds[j];
    if (r->height != height) return E_STALE_ROUND;
    EpochClient *v = &a->epoch_clients[vi], *t = &a->epoch_clients[trainer_i];
    if ((uint64_t)vi == trainer_i ||
        !eligible(a->rounds[(j + 1) % NUM_ROUNDS].random_seed, &v->p2p, &t->p2p, r->clients_len,
                  a->config.verifiers_per_mille))
        return E_NOT_A_VERIFIER;
    uint64_t key = load_u64(t->p2p.x);
    if (height + 1 < v->verdict_height || (height + 1 == v->verdict_height && key <= v->verdict_key))
        return E_DUPLICATE_VERDICT;
    v->verdict_height = height + 1;
    v->verdict_key = key;
    uint8_t *count = outcome == VERDICT_PASS ? &t->passes[j] : &t->fails[j];
    if (*count == UINT8_MAX) return E_ARITHMETIC_OVERFLOW;
    *count += 1;
    if (outcome != VERDICT_PASS && t->accuser[j] == 0) t->accuser[j] = (uint16_t)(v->registry_index + 1);
    /* the epoch's totals (saturating: they never refuse a verdict); the epoch's first accuser counts once */
    uint16_t me = (uint16_t)(v->registry_index + 1);
    if (outcome == VERDICT_PASS) {
        if (t->epoch_passes < UINT8_MAX) t->epoch_passes++;
    } else if (t->epoch_accuser != me) {
        if (t->epoch_accuser == 0) t->epoch_accuser = me;
        if (t->epoch_fails < UINT8_MAX) t->epoch_fails++;
    }
    uint8_t fails = t->fails[j], passes = t->passes[j];
    bool on_result = fails >= 2 && fails > passes;
    bool in_epoch = t->epoch_fails >= 2 && t->epoch_fails > t->epoch_passes;
    if ((on_result || in_epoch) && t->state != CS_EJECTED) {
        t->state = CS_EJECTED;
        slash(a, (RegisteredClient *)registry_entry(a, t));
        SolBytes event[3] = {{(const uint8_t *)"convicted", 9}, {t->signer.x, 32}, {h, 4}};
        sol_log_data(event, 3);
    } else if (outcome == VERDICT_PASS && passes >= 2 && passes > fails && t->state != CS_EJECTED &&
               t->accuser[j] != 0 && t->accuser[j] != VERDICT_SETTLED) {
        slash(a, accuser_entry(a, t->accuser[j] - 1u));
        t->accuser[j] = VERDICT_SETTLED;
    }
    SolBytes event[7] = {{(const uint8_t *)"verdict", 7}, {v->signer.x, 32}, {t->signer.x, 32}, {h, 4},
                         {&outcome, 1}, {result, 32}, {ef, 32}};
    sol_log_data(event, 7);
    if ((err = tick_now(&ctx, 3))) return err;
    return bump_nonce(a);
}
