"""Shared test setup: every test session compiles into its own empty cache folder."""
import os
import tempfile

import pytest

# Set before modelc is imported anywhere, so no test touches the user's real cache.
os.environ["MODELC_CACHE_DIR"] = tempfile.mkdtemp(prefix="modelc-test-cache-")


@pytest.fixture
def cache_dir():
    return os.environ["MODELC_CACHE_DIR"]
