"""python -m localnet: the same as `psyche localnet`."""
from localnet.cli import localnet

localnet()
