"""The node's use cases: send, receive, open, acknowledge, recall, register, retention.

Permission checks live here. Nothing in this package parses HTTP or speaks aiohttp: the
adapters in :mod:`exchange.http` and :mod:`exchange.cli` call these methods.
"""
