"""The ``exchange`` command: keys, the signed directory, and sealing and opening envelopes.

``main`` (in :mod:`exchange.cli.main`) parses the command line and runs one command module:
:mod:`~exchange.cli.keys_cmd` (``authority create``, ``keys create``),
:mod:`~exchange.cli.directory_cmd` (``directory sign``, ``directory show``) and
:mod:`~exchange.cli.envelope_cmd` (``seal``, ``open``, ``inspect``). Shared options live in
:mod:`~exchange.cli.common`, rollback state in :mod:`~exchange.cli.state`, and every error
becomes one ``exchange: ...`` line in :mod:`~exchange.cli.errors`. See docs/cli.md.
"""
