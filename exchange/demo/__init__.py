"""The demo story (``exchange demo``) and the loopback deployment harness the tests share.

Not part of the product's runtime: a node never imports this package.
"""
