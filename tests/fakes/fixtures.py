"""Pytest fixtures for the fake ad platforms: each a started server, stopped after the test.

Test folders that use them import them in their ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.google_ads import FakeGoogleAdsServer
from tests.fakes.meta_ads import FakeMetaServer


@pytest.fixture
def meta() -> Iterator[FakeMetaServer]:
    """A running fake Meta Marketing API."""
    with FakeMetaServer() as server:
        yield server


@pytest.fixture
def google() -> Iterator[FakeGoogleAdsServer]:
    """A running fake Google Ads API."""
    with FakeGoogleAdsServer() as server:
        yield server
