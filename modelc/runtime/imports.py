"""Late imports that leave nothing half-initialised behind.

An import that is interrupted (Ctrl-C while SymPy loads during the first compile) or fails
halfway leaves the modules it had started in sys.modules. Later imports then find a package
without its submodules ("module 'sympy' has no attribute 'printing'"), recurse without end,
or parse with a half-built grammar: the process could never compile again.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator


@contextlib.contextmanager
def imports_undone_on_failure() -> Iterator[None]:
    """Run the imports of the block; when it fails or is interrupted, take every module it added
    out of sys.modules (the next attempt imports them afresh), then re-raise."""
    before = set(sys.modules)
    try:
        yield
    except BaseException:
        for name in set(sys.modules) - before:
            sys.modules.pop(name, None)
        raise
