"""Code generation: a checked System -> the source text of one Python module.

Per-target printers (printers.py), integration schemes as data (schemes.py), the
backend-neutral plan of what runs once / per chunk / per step (plan.py), and one module
per backend that turns a plan into template variables for templates/<backend>/.
"""
from __future__ import annotations

import json
import pprint

import jinja2

from ..errors import UnsupportedFeatureError, did_you_mean
from ..ir import System
from ..resources import resource_dir
from .cupy_backend import module_context as cupy_context
from .numpy_backend import module_context as numpy_context
from .plan import make_plan
from .schemes import SCHEMES, get_scheme

BACKENDS = {"numpy": numpy_context, "cupy": cupy_context}
DTYPES = ("float64", "float32")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=False, lstrip_blocks=False, autoescape=False)
    env.filters["pyrepr"] = lambda value: pprint.pformat(value, width=100, sort_dicts=False)
    env.filters["tojson"] = json.dumps
    return env


def generate(system: System, method: str = "euler", backend: str = "numpy", dtype: str = "float64",
             key: str = "", version: str = "") -> str:
    """The generated module's source text."""
    if backend not in BACKENDS:
        raise UnsupportedFeatureError(f"unknown backend '{backend}'", None,
                                      did_you_mean(backend, BACKENDS) or f"choose one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise UnsupportedFeatureError(f"unsupported dtype '{dtype}'", None, f"choose one of {', '.join(DTYPES)}")
    scheme = get_scheme(method)
    plan = make_plan(system, scheme)
    context = BACKENDS[backend](system, plan, key, version, dtype)
    source = _environment().get_template(f"{backend}/module.py.j2").render(**context)
    compile(source, f"<modelc {backend} module>", "exec")  # a generator bug fails here, not at import
    return source


__all__ = ["generate", "BACKENDS", "DTYPES", "SCHEMES"]
