"""The node: an aiohttp service holding organisations' keys, their outbox, inbox and ledger."""
