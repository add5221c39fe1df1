"""FAKE_CUPY: a stand-in for the `cupy` module, for testing generated CuPy modules on a CPU.

This is NOT CuPy. Arrays are NumPy arrays (a subclass with CuPy's .get()/.set()), and
`RawModule` compiles the generated CUDA source with the host C compiler (gcc) and runs each
kernel launch on the CPU: blocks one after the other, the threads of a block either in a loop
or -- for kernels that synchronise (MODELC_SYNC) -- as coroutines (ucontext) that pass control
round robin at each barrier, so the shared-memory code of the persistent kernel and of the
reductions runs with __syncthreads() semantics. Stream capture records
launches, matmuls and reductions instead of running them, and `Graph.launch` replays them:
anything the generated module does on the host inside a capture (a copy, a fill) fails here.

Every call the module makes is appended to `calls` (name, details), for tests to inspect.

Usage: `install()` puts it in sys.modules["cupy"] (undo with `uninstall()`).
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

import numpy as np

FAKE_CUPY = True
calls: list[tuple[str, object]] = []
_capturing: list | None = None
_BUILD_DIR = None
_LIBS: dict[str, ctypes.CDLL] = {}


class ndarray(np.ndarray):
    """A NumPy array that answers CuPy's host-transfer methods."""

    def get(self, stream=None):
        calls.append(("get", self.shape))
        return np.array(self, copy=True).view(np.ndarray)

    def set(self, arr, stream=None):
        if _capturing is not None:
            raise RuntimeError("FAKE_CUPY: host-to-device copy during stream capture")
        arr = np.asarray(arr)
        if arr.shape != self.shape:
            raise ValueError(f"FAKE_CUPY: set() shape mismatch {arr.shape} vs {self.shape}")
        calls.append(("set", self.shape))
        self[...] = arr

    def fill(self, value):
        if _capturing is not None:
            raise RuntimeError("FAKE_CUPY: fill() during stream capture")
        calls.append(("fill", value))
        np.ndarray.fill(self, value)


def _wrap(a):
    return a.view(ndarray) if isinstance(a, np.ndarray) else a


def _no_capture(what):
    if _capturing is not None:
        raise RuntimeError(f"FAKE_CUPY: {what} during stream capture (allocations are not allowed there)")


def asarray(a, dtype=None):
    _no_capture("asarray")
    calls.append(("asarray", np.shape(a)))
    return np.array(a, dtype=dtype, copy=True).view(ndarray) if not isinstance(a, ndarray) else \
        (a if dtype is None or a.dtype == dtype else a.astype(dtype).view(ndarray))


def ascontiguousarray(a, dtype=None):
    _no_capture("ascontiguousarray")
    calls.append(("ascontiguousarray", np.shape(a)))
    return np.array(a, dtype=dtype, order="C", copy=True).view(ndarray)


def asnumpy(a, stream=None):
    return np.array(a, copy=True).view(np.ndarray) if isinstance(a, np.ndarray) else np.asarray(a)


def empty(shape, dtype=float):
    _no_capture("empty")
    calls.append(("empty", shape))
    return np.full(shape, np.nan, dtype=dtype).view(ndarray)   # NaN: reading unwritten memory shows


def zeros(shape, dtype=float):
    _no_capture("zeros")
    calls.append(("zeros", shape))
    return np.zeros(shape, dtype=dtype).view(ndarray)


def _deferred(name, fn, detail):
    calls.append((name, detail))
    if _capturing is not None:
        _capturing.append(fn)
        return None
    return fn()


def matmul(a, b, out=None):
    """Recorded with whether it wrote into a preallocated array (a run must; rhs() need not)."""
    if out is None:
        _no_capture("matmul without out=")
        calls.append(("matmul", (np.shape(a), np.shape(b), False)))
        return _wrap(np.matmul(a, b))
    return _deferred("matmul", lambda: np.matmul(a, b, out=out), (a.shape, b.shape, True))


class _XORWOW:
    """Stands in for cupy.random.XORWOW: seeded like it (an int or a SeedSequence), but its numbers
    come from NumPy's PCG64 -- neither cuRAND's nor the NumPy backend's SFC64 stream."""

    def __init__(self, seed=None, *, size=-1):
        calls.append(("XORWOW", size))
        self.size = size
        self.generator = np.random.Generator(np.random.PCG64(seed))


class _Generator:
    """Stands in for cupy.random.Generator: standard_normal on the stand-in's arrays."""

    def __init__(self, bit_generator):
        self.bit_generator = bit_generator

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        _no_capture("standard_normal")
        count = int(np.prod(size)) if size is not None else 1
        if 0 < self.bit_generator.size < count:
            raise ValueError(f"FAKE_CUPY: {count} normals at once, more than the generator's size {self.bit_generator.size}")
        calls.append(("standard_normal", size))
        return _wrap(self.bit_generator.generator.standard_normal(size, dtype=dtype, out=out))


random = types.SimpleNamespace(Generator=_Generator, XORWOW=_XORWOW)


def __getattr__(name):
    """Everything else (tanh, where, isfinite, pi, ...) is NumPy's, on fake arrays."""
    attr = getattr(np, name)
    if callable(attr) and not isinstance(attr, type):
        def wrapped(*args, **kwargs):
            if _capturing is not None:
                raise RuntimeError(f"FAKE_CUPY: cupy.{name} during stream capture")
            return _wrap(attr(*args, **kwargs))
        return wrapped
    return attr


# --- kernels: the CUDA source compiled as C ---------------------------------------------------

_C_PRELUDE = r"""
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdlib.h>
#include <stddef.h>
#include <ucontext.h>
typedef struct { unsigned int x, y, z; } mc_dim3;
static mc_dim3 threadIdx, blockIdx, blockDim, gridDim;
static void* mc_shared;
/* The threads of a block that synchronises are coroutines in this one OS thread: MODELC_SYNC()
   passes control to the next thread, round robin. Every thread of a block passes the same
   barriers, so when thread 0 runs again all threads have reached the barrier: __syncthreads(). */
static ucontext_t mc_main_context;
static ucontext_t* mc_contexts;
static void mc_sync(void) {
    unsigned int me = threadIdx.x, next = (me + 1) % blockDim.x;
    threadIdx.x = next;
    swapcontext(&mc_contexts[me], &mc_contexts[next]);
    threadIdx.x = me;
}
#define MODELC_KERNEL static
#define MODELC_FN static inline
#define MODELC_SYNC() mc_sync()
#define MODELC_SMEM REAL* mc_smem = (REAL*)mc_shared
#define __restrict__ restrict
"""

_SIGNATURE = re.compile(r"MODELC_KERNEL void (\w+)\(\s*(.*?)\)\s*\{", re.S)


def parse_kernels(source: str) -> dict[str, list[tuple[str, str]]]:
    """kernel name -> [(C type, parameter name)] from the generated source."""
    kernels = {}
    for match in _SIGNATURE.finditer(source):
        params = []
        for raw in match.group(2).split(","):
            raw = " ".join(raw.split())
            ctype, name = raw.rsplit(" ", 1)
            params.append((ctype, name))
        kernels[match.group(1)] = params
    return kernels


def _kernel_bodies(source: str) -> dict[str, str]:
    """kernel name -> its text, to know which ones synchronise threads."""
    names = [m.group(1) for m in _SIGNATURE.finditer(source)]
    pieces = re.split(r"MODELC_KERNEL void ", source)[1:]
    return dict(zip(names, pieces))


def _launcher(name: str, params: list[tuple[str, str]], synchronises: bool) -> str:
    """The C function that runs one launch. Its own names all start with mc_ (as no model
    identifier does): a kernel argument called `b` or `t` must not be hidden by a loop counter."""
    fields = "".join(f"    {t.replace('__restrict__', '')} {n};\n" for t, n in params)
    plist = ", ".join(f"{t.replace('__restrict__', '')} {n}" for t, n in params)
    from_struct = ", ".join(f"{name}_args.{n}" for _, n in params)
    direct = ", ".join(n for _, n in params)
    store = "".join(f"    {name}_args.{n} = {n};\n" for _, n in params)
    return f"""
static struct {{
{fields}}} {name}_args;
static void {name}_coroutine(void) {{
    {name}({from_struct});
}}
int {name}_launch(unsigned int mc_gx, unsigned int mc_bx, size_t mc_shmem, {plist}) {{
{store}    gridDim.x = mc_gx; gridDim.y = gridDim.z = 1;
    blockDim.x = mc_bx; blockDim.y = blockDim.z = 1;
    blockIdx.y = blockIdx.z = 0;
    threadIdx.y = threadIdx.z = 0;
    mc_shared = calloc(1, mc_shmem > 0 ? mc_shmem : 8);
    const size_t mc_stack = 1 << 16;
    char* mc_stacks = {1 if synchronises else 0} ? (char*)malloc(mc_bx * mc_stack) : NULL;
    mc_contexts = {1 if synchronises else 0} ? (ucontext_t*)malloc(mc_bx * sizeof(ucontext_t)) : NULL;
    for (unsigned int mc_blk = 0; mc_blk < mc_gx; ++mc_blk) {{
        blockIdx.x = mc_blk;
        if ({1 if synchronises else 0}) {{
            for (unsigned int mc_t = 0; mc_t < mc_bx; ++mc_t) {{
                getcontext(&mc_contexts[mc_t]);
                mc_contexts[mc_t].uc_stack.ss_sp = mc_stacks + mc_t * mc_stack;
                mc_contexts[mc_t].uc_stack.ss_size = mc_stack;
                mc_contexts[mc_t].uc_link = &mc_main_context;
                makecontext(&mc_contexts[mc_t], {name}_coroutine, 0);
            }}
            for (unsigned int mc_t = 0; mc_t < mc_bx; ++mc_t) {{   /* start thread 0; later ones resume at their end */
                threadIdx.x = mc_t;
                swapcontext(&mc_main_context, &mc_contexts[mc_t]);
            }}
        }} else {{
            for (unsigned int mc_t = 0; mc_t < mc_bx; ++mc_t) {{
                threadIdx.x = mc_t;
                {name}({direct});
            }}
        }}
    }}
    free(mc_stacks);
    free(mc_contexts);
    free(mc_shared);
    return 0;
}}
"""


def c_harness(source: str) -> str:
    """The generated CUDA source as a C file with one launcher per kernel."""
    params = parse_kernels(source)
    bodies = _kernel_bodies(source)
    text = _C_PRELUDE + source + "\n"
    for name, plist in params.items():
        text += _launcher(name, plist, "MODELC_SYNC" in bodies[name])
    return text


def compile_library(source: str, build_dir: str | None = None) -> ctypes.CDLL:
    """gcc -shared the harness of `source` (cached by content)."""
    global _BUILD_DIR
    text = c_harness(source)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    if digest in _LIBS:
        return _LIBS[digest]
    if build_dir is None:
        if _BUILD_DIR is None:
            _BUILD_DIR = tempfile.mkdtemp(prefix="fake-cupy-")
            atexit.register(shutil.rmtree, _BUILD_DIR, True)   # (a loaded library may be removed on exit)
        build_dir = _BUILD_DIR
    c_file = os.path.join(build_dir, f"k_{digest}.c")
    so_file = os.path.join(build_dir, f"k_{digest}.so")
    with open(c_file, "w") as f:
        f.write(text)
    cc = os.environ.get("CC", "gcc")
    # -O0: the tests' kernels run a few steps on a few units; compiling is what takes the time
    result = subprocess.run([cc, "-std=gnu11", "-O0", "-shared", "-fPIC", "-Wall", "-Werror",
                             "-Wno-unused-variable", "-Wno-unused-function", "-Wno-unused-but-set-variable",
                             c_file, "-o", so_file, "-lm"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"FAKE_CUPY: the kernels do not compile as C ({c_file}):\n{result.stderr[-6000:]}")
    lib = ctypes.CDLL(so_file)
    _LIBS[digest] = lib
    return lib


_CTYPES = {"long long": ctypes.c_longlong, "double": ctypes.c_double, "float": ctypes.c_float,
           "int": ctypes.c_int}


class RawKernel:
    max_threads_per_block = 1024   # what CuPy reports for a compiled kernel (tests may lower it)

    def __init__(self, lib, name, params, real):
        self.name, self.params = name, params
        self.real = real
        self.fn = getattr(lib, f"{name}_launch")
        types_ = [ctypes.c_uint, ctypes.c_uint, ctypes.c_size_t]
        for ctype, _ in params:
            ctype = ctype.replace("__restrict__", "").strip()
            if "*" in ctype:
                types_.append(ctypes.c_void_p)
            elif ctype == "REAL":
                types_.append(ctypes.c_double if real == "double" else ctypes.c_float)
            else:
                types_.append(_CTYPES[ctype])
        self.fn.argtypes = types_
        self.fn.restype = ctypes.c_int

    def _convert(self, args):
        if len(args) != len(self.params):
            raise TypeError(f"FAKE_CUPY: {self.name} takes {len(self.params)} arguments, got {len(args)}")
        out = []
        for (ctype, pname), value in zip(self.params, args):
            ctype = ctype.replace("__restrict__", "").strip()
            if "*" in ctype:
                if not isinstance(value, np.ndarray):
                    raise TypeError(f"FAKE_CUPY: {self.name}: {pname} must be an array, got {type(value)}")
                base = ctype.replace("const", "").replace("*", "").strip()
                want = {"REAL": np.float64 if self.real == "double" else np.float32, "long long": np.int64,
                        "int": np.int32}[base]
                if value.dtype != want or not value.flags.c_contiguous:
                    raise TypeError(f"FAKE_CUPY: {self.name}: {pname} must be a contiguous {np.dtype(want)} "
                                    f"array, got {value.dtype} (contiguous={value.flags.c_contiguous})")
                out.append(value.ctypes.data)
            else:
                if not isinstance(value, np.generic):
                    raise TypeError(f"FAKE_CUPY: {self.name}: {pname} must be a NumPy scalar (as CuPy "
                                    f"needs a fixed C type), got {type(value).__name__}")
                want = {"REAL": np.float64 if self.real == "double" else np.float32, "double": np.float64,
                        "long long": np.int64, "int": np.int32}[ctype]
                if value.dtype != want:
                    raise TypeError(f"FAKE_CUPY: {self.name}: {pname} must be {np.dtype(want)}, got {value.dtype}")
                out.append(value.item())
        return out

    def __call__(self, grid, block, args, shared_mem=0):
        converted = self._convert(tuple(args))
        keep = tuple(args)

        def launch():
            _ = keep
            rc = self.fn(int(grid[0]), int(block[0]), int(shared_mem), *converted)
            if rc != 0:
                raise RuntimeError(f"FAKE_CUPY: launching {self.name} failed")
        _deferred("kernel", launch, (self.name, tuple(grid), tuple(block), shared_mem))


class RawModule:
    def __init__(self, code, options=(), **kwargs):
        calls.append(("RawModule", len(code)))
        self.code = code
        self.lib = compile_library(code)
        self.params = parse_kernels(code)
        real = re.search(r"typedef (double|float) REAL;", code).group(1)
        self.real = real

    def get_function(self, name):
        if name not in self.params:
            raise AttributeError(f"FAKE_CUPY: no kernel {name}")
        return RawKernel(self.lib, name, self.params[name], self.real)


# --- cupy.cuda: streams, graphs, the device --------------------------------------------------

class Graph:
    def __init__(self, ops):
        self.ops = ops

    def launch(self, stream=None):
        calls.append(("graph.launch", len(self.ops)))
        for op in self.ops:
            op()

    def upload(self, stream=None):
        pass


class Stream:
    fail_capture = False    # tests set this to see the module fall back to plain launches

    def __init__(self, null=False, non_blocking=False, ptds=False):
        calls.append(("Stream", non_blocking))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self, mode=None):
        global _capturing
        if Stream.fail_capture:
            raise RuntimeError("FAKE_CUPY: capture refused (test)")
        calls.append(("begin_capture", None))
        _capturing = []

    def end_capture(self):
        global _capturing
        ops, _capturing = _capturing, None
        calls.append(("end_capture", len(ops or [])))
        return Graph(ops or [])

    def is_capturing(self):
        return _capturing is not None

    def synchronize(self):
        calls.append(("synchronize", None))


class _Runtime:
    device_count = 1

    def getDeviceProperties(self, index):
        return {"name": b"FAKE_CUPY CPU stand-in", "totalGlobalMem": 2**30, "multiProcessorCount": 1}

    class CUDARuntimeError(RuntimeError):
        pass

    def getDeviceCount(self):
        if self.device_count is None:
            raise _Runtime.CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return self.device_count


class Device:
    def __init__(self, index=0):
        self.id = index

    def synchronize(self):
        calls.append(("device.synchronize", None))


class _MemoryPool:
    def free_all_blocks(self):
        pass


def get_default_memory_pool():
    return _MemoryPool()


__version__ = "0.0-FAKE_CUPY"
runtime = _Runtime()
cuda = types.SimpleNamespace(Stream=Stream, runtime=runtime, Device=Device,
                             graph=types.SimpleNamespace(Graph=Graph))


def reset_calls() -> None:
    calls.clear()


def install():
    """Make `import cupy` give this module."""
    module = sys.modules[__name__]
    sys.modules["cupy"] = module
    return module


def uninstall():
    if sys.modules.get("cupy") is sys.modules[__name__]:
        del sys.modules["cupy"]
