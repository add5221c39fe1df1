"""Helpers for tests of generated modules: load one from its source text, and run with the
CuPy stand-in (tests/fake_cupy.py) installed as `cupy`."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import sys


def load_source(source: str, name: str, folder: pathlib.Path):
    """The generated module of `source`, written to folder/name.py and imported from there."""
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def fake_cupy_installed(cache_dir: pathlib.Path):
    """tests/fake_cupy.py as `cupy`, compiling into a private cache folder; afterwards the real
    `cupy` (if any), the cache folder and no module loaded against the stand-in are left."""
    import fake_cupy
    previous_cupy = sys.modules.get("cupy")
    previous_cache = os.environ.get("MODELC_CACHE_DIR")
    os.environ["MODELC_CACHE_DIR"] = str(cache_dir)
    module = fake_cupy.install()
    try:
        yield module
    finally:
        from modelc.runtime import compiler
        for key, loaded in list(compiler._loaded.items()):   # generated modules bound to the stand-in
            if getattr(loaded, "cp", None) is module:
                del compiler._loaded[key]
        fake_cupy.uninstall()
        if previous_cupy is not None:
            sys.modules["cupy"] = previous_cupy
        if previous_cache is None:
            os.environ.pop("MODELC_CACHE_DIR", None)
        else:
            os.environ["MODELC_CACHE_DIR"] = previous_cache
