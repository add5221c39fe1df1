"""The choices a compile takes, one list each: integration methods, backends, dtypes.

Light on purpose (no SymPy, no Jinja): the runtime validates a user's choice with these on
a cache hit, before anything heavy is imported.
"""
from __future__ import annotations

from ..errors import UnsupportedFeatureError, did_you_mean
from .schemes import SCHEMES, get_scheme

METHODS = tuple(SCHEMES)
BACKENDS = ("numpy", "cupy", "numba")  # numba: the compiled CPU backend (extra "compiled")
DTYPES = ("float64", "float32")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise UnsupportedFeatureError(f"unknown backend '{backend}'", None,
                                      did_you_mean(backend, BACKENDS) or f"choose one of {', '.join(BACKENDS)}")
    return backend


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise UnsupportedFeatureError(f"unsupported dtype '{dtype}'", None, f"choose one of {', '.join(DTYPES)}")
    return dtype


__all__ = ["METHODS", "BACKENDS", "DTYPES", "check_backend", "check_dtype", "get_scheme"]
