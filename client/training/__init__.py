"""The compute side of a client: models (Llama, DeepSeek-MLA), the DisTrO optimizer, schedules, training steps.

Usable on its own (no chain, no P2P): `bench/distro_vs_adamw.py` drives K trainers in one process.
"""
