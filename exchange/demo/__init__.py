"""The demo story (``exchange demo``) and the loopback deployment harness the tests share.

Not part of the product's runtime: a node never imports this package, and only the
``exchange demo`` command does, when it runs. Its loopback SMTP sink needs ``aiosmtpd``,
which the ``demo`` extra installs; the MESH sandbox it can run lives in its own environment.
"""
