"""Kept only for tests/browser/test_dpo_journey.py, which imports these from here.

The web tests' synthetic records are in :mod:`tests.web.synthetic`; this module names
them under their old address until the browser tests import them from there.
"""

from tests.web.synthetic import not_shared, referral_to_front_door

__all__ = ["not_shared", "referral_to_front_door"]
