"""Kept only for tests/browser/test_inbox_journey.py, which imports these from here.

The web tests' synthetic records are in :mod:`tests.web.synthetic`; this module names
them under their old address until the browser tests import them from there.
"""

from tests.web.synthetic import PDF, PDF_NAME, information_request, referral

__all__ = ["PDF", "PDF_NAME", "information_request", "referral"]
