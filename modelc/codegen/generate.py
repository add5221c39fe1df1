"""generate(): a checked System -> the source text of one Python module."""
from __future__ import annotations

from ..ir import System
from .cupy_backend import module_context as cupy_context
from .numpy import module_context as numpy_context
from .options import BACKENDS, check_backend, check_dtype, get_scheme
from .plan import make_plan
from .templating import environment

_CONTEXTS = {"numpy": numpy_context, "cupy": cupy_context}
assert tuple(_CONTEXTS) == BACKENDS


def generate(system: System, method: str = "euler", backend: str = "numpy", dtype: str = "float64",
             key: str = "", version: str = "") -> str:
    """The generated module's source text."""
    check_backend(backend)
    check_dtype(dtype)
    scheme = get_scheme(method)
    plan = make_plan(system, scheme)
    context = _CONTEXTS[backend](system, plan, key, version, dtype)
    source = environment().get_template(f"{backend}/module.py.j2").render(**context)
    compile(source, f"<modelc {backend} module>", "exec")  # a generator bug fails here, not at import
    return source
