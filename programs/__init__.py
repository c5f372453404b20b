"""The on-chain programs (C, built to SBF by our own linker) and their build."""
