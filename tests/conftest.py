"""Shared test setup: every test session compiles into its own empty cache folder."""
import os
import tempfile

import pytest

# Set before modelc is imported anywhere, so no test touches the user's real cache.
os.environ["MODELC_CACHE_DIR"] = tempfile.mkdtemp(prefix="modelc-test-cache-")


@pytest.fixture
def cache_dir():
    return os.environ["MODELC_CACHE_DIR"]


# --- fuzzing (tests/test_fuzz.py) ------------------------------------------------------
# The hypothesis tests run in every test session with small example counts (the file takes
# seconds). A long run raises the count for every fuzz test:
#     pytest -m fuzz                              (FUZZ_LONG_RUN examples per test)
#     MODELC_FUZZ_EXAMPLES=5000 pytest -m fuzz    (any count; also works without -m fuzz)
FUZZ_LONG_RUN = 2000


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: hypothesis fuzz tests; `pytest -m fuzz` runs them with "
                                       "many more examples (MODELC_FUZZ_EXAMPLES=N sets the count)")
    selected = config.getoption("markexpr", default="") or ""
    if "fuzz" in selected and "not fuzz" not in selected and not os.environ.get("MODELC_FUZZ_EXAMPLES"):
        os.environ["MODELC_FUZZ_EXAMPLES"] = str(FUZZ_LONG_RUN)
