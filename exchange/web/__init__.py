"""The staff web pages: GOV.UK Frontend pages over the same service the staff API uses.

A layer above :mod:`exchange.http` and below :mod:`exchange.node`: a page handler parses a
form, calls one method of the node's service (which checks permissions) and renders a
Jinja2 template. :mod:`exchange.web.app` adds the pages to the node's application,
:mod:`exchange.web.security` holds the headers and CSRF protection every page gets, and
:mod:`exchange.web.assets` serves the pinned GOV.UK Frontend files shipped in the package.
"""
