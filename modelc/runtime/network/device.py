"""Device and dtype: which backend runs on a device, which dtype the arrays take, and bringing
a device's arrays back to the host.

The backends and dtypes themselves are listed once, in modelc.codegen.options.
"""
from __future__ import annotations

import numpy as np

from ...codegen.options import check_backend, check_dtype
from ...errors import BackendUnavailableError, InvalidValueError
from ..imports import imports_undone_on_failure

_GPU_DEVICES = ("cuda", "gpu")  # "cuda", "cuda:1", "gpu"


def backend_for(device: str, backend: str | None = None) -> str:
    """The backend for a device: "cpu" -> numpy (or backend="numba", the compiled CPU backend);
    a GPU -> cupy, once CuPy has found one (a missing CuPy, numba or GPU is an error, never a
    silent fallback to NumPy)."""
    if device == "cpu":
        if backend in (None, "numpy"):
            return "numpy"
        if check_backend(backend) != "numba":
            raise InvalidValueError(f"backend {backend!r} does not run on device='cpu'", None,
                                    "on the CPU: backend='numpy' (the default) or 'numba'")
        _require_numba()
        return "numba"
    if device.split(":")[0] not in _GPU_DEVICES:
        raise InvalidValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if backend not in (None, "cupy"):
        raise InvalidValueError(f"backend {backend!r} does not run on device={device!r}", None,
                                "a GPU runs backend='cupy' (the default there)")
    _require_gpu()
    return "cupy"


def _require_numba() -> None:
    try:
        with imports_undone_on_failure():
            import numba  # noqa: F401  (late: an optional dependency, needed only for backend="numba")
    except ImportError:
        raise BackendUnavailableError("backend='numba' needs numba, which is not installed", None,
                                      "install the extra: pip install modelc[compiled]") from None


def _require_gpu() -> None:
    try:
        with imports_undone_on_failure():
            import cupy  # late: an optional dependency, needed only for a GPU
    except ImportError:
        raise BackendUnavailableError("device='cuda' needs CuPy, which is not installed", None,
                                      "install CuPy for your CUDA version: pip install modelc[cupy]") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver or runtime missing: CuPy raises its own error types
        raise BackendUnavailableError(f"device='cuda' found no usable GPU ({exc})", None,
                                      "check the NVIDIA driver, or use device='cpu'") from None
    if count < 1:
        raise BackendUnavailableError("device='cuda' found no GPU", None, "use device='cpu'")


def dtype_name(dtype) -> str:
    """ "float64" or "float32" from a name or a NumPy type (np.float32, np.dtype("float32"))."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    return check_dtype(name)


def to_host(value) -> np.ndarray:
    """A NumPy array of a NumPy or CuPy array (CuPy copies to the host with .get())."""
    if isinstance(value, np.ndarray):
        return value
    get = getattr(value, "get", None)
    return get() if callable(get) else np.asarray(value)
