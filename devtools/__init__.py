"""Test rigs that drive the product from outside; the product never imports this package.

In process: `sim_chain`, `model_account`, `inproc`, `faulty_client` (clients over the reference model).
Across processes: `chaos` injects faults into a `client.local_cluster.LocalCluster` run the way the world
does (kill -9, SIGSTOP, restarts, a second process on a wallet, an RPC node that restarts, a busy machine),
`chaos_analysis` reads such a run back from the clients' JSON logs and the chain and states the properties
a fault-tolerant run must keep, and `chaos_config` is the run they train. tests/integration/test_chaos.py and
bench/fault_cost.py are built on them.
"""
