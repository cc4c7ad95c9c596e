"""The relay role: pull mailboxes for organisations that collect rather than receive.

:mod:`~exchange.relay.server` answers the signed mailbox API, :mod:`~exchange.relay.admission`
decides what a mailbox accepts, and :mod:`~exchange.relay.store` keeps the ciphertext.
"""
