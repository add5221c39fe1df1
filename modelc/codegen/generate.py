"""generate(): a checked System -> the source text of one Python module."""
from __future__ import annotations

from ..errors import UnknownVariableError, UnsupportedFeatureError, did_you_mean
from ..ir import System
from .options import check_backend, check_dtype, get_scheme
from .plan import make_plan
from .templating import environment


def module_context(backend: str):
    """The backend's module_context. Late on purpose: a NumPy compile does not import the CuPy
    backend (its C printer alone is a tenth of a second of a cold compile)."""
    if backend == "cupy":
        from .cupy import module_context as context
    elif backend == "numba":
        from .numba import module_context as context
    else:
        from .numpy import module_context as context
    return context


def generate(system: System, method: str = "euler", backend: str = "numpy", dtype: str = "float64",
             key: str = "", version: str = "", trainable=()) -> str:
    """The generated module's source text; with trainable parameters, grad() beside run()."""
    check_backend(backend)
    check_dtype(dtype)
    trainable = check_trainable(system, trainable)
    dtype = complex_dtype(system, backend, dtype, trainable)
    scheme = get_scheme(method)
    plan = make_plan(system, scheme, trainable)
    context = module_context(backend)(system, plan, key, version, dtype)
    source = environment().get_template(f"{backend}/module.py.j2").render(**context)
    compile(source, f"<modelc {backend} module>", "exec")  # a generator bug fails here, not at import
    return source


def complex_dtype(system: System, backend: str, dtype: str, trainable) -> str:
    """A model with complex variables computes in the complex dtype of its precision, where the
    backend can (NumPy's array code, numba's kernels; no gradients through complex values yet)."""
    if not system.complex_names:
        return dtype
    some = sorted(system.complex_names)[0]
    if backend not in ("numpy", "numba") or trainable or system.noise:
        extra = " and no trainable parameters" if trainable else " and no noise" if system.noise else ""
        raise UnsupportedFeatureError(f"complex variables ('{some}') need backend='numpy' or 'numba'{extra}", None,
                                      "the CuPy kernels, the generated gradients and the noise draws compute in "
                                      "real numbers")
    return {"float64": "complex128", "float32": "complex64"}[dtype]


def check_trainable(system: System, trainable) -> tuple[str, ...]:
    """The trainable parameters, each a parameter of the system."""
    trainable = tuple(sorted(set(trainable)))
    for name in trainable:
        if name not in system.params:
            raise UnknownVariableError(f"no parameter '{name}' to train", None,
                                       did_you_mean(name, system.params) or "train parameters of the model")
    return trainable
