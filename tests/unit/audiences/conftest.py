"""Fixtures of the audience tests: the fake ad platforms (``meta``, ``google``) from :mod:`tests.fakes.fixtures`."""

from tests.fakes.fixtures import google, meta

__all__ = ["google", "meta"]
