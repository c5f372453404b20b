"""The training client and the psyche CLI."""
