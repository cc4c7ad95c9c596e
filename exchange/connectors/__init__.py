"""Transports behind one small port (``exchange.connectors.base``): deliver, collect, recall.

``https`` pushes to a peer node and sends it recall notices, ``relay_mailbox`` deposits at and
collects from relays, ``mesh`` speaks the NHS MESH REST API, ``smtp`` sends a sealed envelope
as a mail attachment or a PII-free notification, and ``memory`` is the in-process fake for
fast tests. The HTTP ones share one aiohttp edge (``edge``). Every connector passes the same
conformance suite (tests/connectors/conformance.py). Envelopes are sealed before any
connector sees them; connectors carry ciphertext and ids only.
"""
