"""The aiohttp adapter of a node: staff API, peer API and operations endpoints.

Handlers parse a request, call one service method and render its answer; the rules live in
:mod:`exchange.service` and below.
"""
