"""Organisation keys, key ids, encrypted key files and the signed directory.

Everything in this package is pure: it takes bytes, keys and a clock and returns values.
Reading and writing files is the caller's job (see ``exchange.files``).
"""
