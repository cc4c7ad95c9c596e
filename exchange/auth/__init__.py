"""Staff sign-in, pure: passwords, TOTP, recovery codes, throttling and the session policy.

Bytes, strings, an injected clock value and injected randomness in; values out. No store,
no sockets, no wall clock: the service layer (``exchange.service.accounts``) reads and writes
the rows and passes ``now`` and a random source in. Every check raises (an
:class:`~exchange.auth.errors.AuthError`) rather than returning a bool, and every
comparison of a secret runs in constant time.
"""
