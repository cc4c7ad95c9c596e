"""The secure inter-agency exchange: sealed envelopes, routing, receipts and the ledger."""

__version__ = "0.1.0"
