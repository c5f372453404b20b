"""Test rigs that drive the product from outside; the product never imports this package.

In process: `sim_chain`, `model_account`, `inproc`, `faulty_client` (clients over the reference model).
Across processes: `chaos` injects faults into a `devtools.local_cluster.LocalCluster` run the way the world
does (kill -9, SIGSTOP, restarts, a second process on a wallet, an RPC node that restarts, a busy machine),
`chaos_analysis` reads such a run back from the clients' JSON logs and the chain and states the properties
a fault-tolerant run must keep, and `chaos_config` is the run they train. tests/integration/test_chaos.py and
bench/fault_cost.py are built on them. `local_cluster` is that network of real processes (a localnet and
`psyche run-client`s), `demo` the README's main demo over it, `netns` the loopback-only re-exec for demos
and benches. Over LiteSVM: `litesvm_harness` (the coordinator program), `treasurer_svm` (the treasurer on
top of it), `differential` (program and reference model driven in lockstep) and `fuzz` (random op
sequences for it).

Dependencies point one way: devtools imports the product (client, coordinator_sdk, programs, ...), never
the reverse; tests/unit/test_layering.py enforces it and that pyproject.toml does not ship this package.
"""
