"""Transports behind one small protocol (``exchange.connectors.base``): deliver, collect, acknowledge.

``https`` pushes to a peer node (the outbox uses it today), ``mesh`` speaks the NHS MESH
REST API, ``smtp`` sends a sealed envelope as a mail attachment or a PII-free notification,
and ``memory`` is the in-process fake for fast tests. Every connector passes the same
conformance suite (tests/connectors/conformance.py). Envelopes are sealed before any
connector sees them; connectors carry ciphertext and ids only.
"""
