"""The node's background work: delivery, collection from pull routes, deadline chases.

Workers are I/O shells: they claim work from the store, call a connector and apply what the
pure machines in :mod:`exchange.outbox` decide.
"""
