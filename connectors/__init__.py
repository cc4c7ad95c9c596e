"""Transports behind one small protocol: HTTPS push, NHS MESH, relay mailboxes, SMTP.

Empty in this release; the connector protocol and its conformance suite arrive with the
routing issue. Envelopes are sealed before any connector sees them.
"""
