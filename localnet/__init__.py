"""A local Solana validator for developers: LiteSVM behind real JSON-RPC."""
