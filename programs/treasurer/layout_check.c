/* Build-time proof that coord_layout.h matches the coordinator's own structs (no code is emitted). */
#include "../coordinator/coordinator.h"
#include "coord_layout.h"

#define SAME(name, a, b) sol_assert_static((a) == (b), name)
SAME(ca_size, sizeof(CoordinatorAccount), CA_SIZE);
SAME(ca_disc, DISC_COORDINATOR_ACCOUNT, CA_DISCRIMINATOR);
SAME(ca_version_value, ACCOUNT_VERSION, CA_VERSION_VALUE);
SAME(ca_version, __builtin_offsetof(CoordinatorAccount, version), CA_OFF_VERSION);
SAME(ca_instance, __builtin_offsetof(CoordinatorAccount, instance), CA_OFF_INSTANCE);
SAME(ca_run_id, __builtin_offsetof(CoordinatorAccount, run_id), CA_OFF_RUN_ID);
SAME(ca_run_id_len, __builtin_offsetof(CoordinatorAccount, run_id_len), CA_OFF_RUN_ID_LEN);
SAME(ca_num_clients, __builtin_offsetof(CoordinatorAccount, num_clients), CA_OFF_NUM_CLIENTS);
SAME(ca_clients, __builtin_offsetof(CoordinatorAccount, clients), CA_OFF_CLIENTS);
SAME(ca_max_clients, MAX_CLIENTS, CA_MAX_CLIENTS);
SAME(rc_size, sizeof(RegisteredClient), RC_SIZE);
SAME(rc_signer, __builtin_offsetof(RegisteredClient, signer), RC_OFF_SIGNER);
SAME(rc_earned, __builtin_offsetof(RegisteredClient, earned), RC_OFF_EARNED);
SAME(rc_slashed, __builtin_offsetof(RegisteredClient, slashed), RC_OFF_SLASHED);
SAME(cp_size, sizeof(ClientPoints), CP_SIZE);
SAME(cp_disc, DISC_CLIENT_POINTS, CP_DISCRIMINATOR);
SAME(cp_account, __builtin_offsetof(ClientPoints, coordinator_account), CP_OFF_ACCOUNT);
SAME(cp_signer, __builtin_offsetof(ClientPoints, signer), CP_OFF_SIGNER);
SAME(cp_earned, __builtin_offsetof(ClientPoints, earned), CP_OFF_EARNED);
SAME(cp_slashed, __builtin_offsetof(ClientPoints, slashed), CP_OFF_SLASHED);
SAME(cp_bump, __builtin_offsetof(ClientPoints, bump), CP_OFF_BUMP);
SAME(ix_init_run, IX_INIT_RUN, CIX_INIT_RUN);
SAME(ix_update_config, IX_UPDATE_CONFIG, CIX_UPDATE_CONFIG);
SAME(ix_update_metadata, IX_UPDATE_METADATA, CIX_UPDATE_METADATA);
SAME(ix_update_model, IX_UPDATE_MODEL, CIX_UPDATE_MODEL);
SAME(ix_update_progress, IX_UPDATE_PROGRESS, CIX_UPDATE_PROGRESS);
SAME(ix_set_future_epoch_rates, IX_SET_FUTURE_EPOCH_RATES, CIX_SET_FUTURE_EPOCH_RATES);
SAME(ix_set_paused, IX_SET_PAUSED, CIX_SET_PAUSED);
SAME(ix_set_checkpoint, IX_SET_CHECKPOINT, CIX_SET_CHECKPOINT);
