"""The seed step written by hand in C (issue 17's "C + BLAS loop", the compiled backend's floor).

One C function runs the whole Euler loop: a fused loop for r = tanh(v), the coupling by BLAS
(dgemv for one network, one dgemm per step for a sweep's B sets), a fused update
v = (1 - dt/tau)*v + (dt*k*J) @ r + dt*(I + eta) written straight into the record row, which is
then the next step's state.  It is compiled at setup by the system C compiler (``$CC``, else
``cc``/``gcc``) into a temporary shared library, loaded with ctypes, and handed the CBLAS
functions of the BLAS NumPy itself loaded (NumPy's wheel ships OpenBLAS as
``numpy.libs/libscipy_openblas64_*.so``, 64-bit integers, symbols ``scipy_cblas_dgemv64_``);
that library runs on one thread, as every contender (benchmarks/__init__.py pins it).
No fast-math: tanh is libm's, as NumPy's.

The same library holds the single-unit circuits (QIF mean field and Jansen-Rit with Euler,
Hodgkin-Huxley with RK4) as plain C loops over doubles, with the constants and initial state of
the hand-written float loops (benchmarks/handwritten.py): the C figure next to those loops.
"""
from __future__ import annotations

import ctypes
import glob
import os
import shutil
import subprocess
import tempfile

import numpy as np

from .workloads import SEED_PARAMS

_SOURCE = r"""
#define _GNU_SOURCE   /* M_PI */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef BLASINT blasint;
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };   /* CBLAS enum values */
typedef void (*dgemv_fn)(int, int, blasint, blasint, double, const double *, blasint,
                         const double *, blasint, double, double *, blasint);
typedef void (*dgemm_fn)(int, int, int, blasint, blasint, blasint, double, const double *,
                         blasint, const double *, blasint, double, double *, blasint);

/* v (B, N): the initial state in, the final state out; rec (steps, B, N); r (B, N) scratch;
   Wk = dt*k*J (N, N); a (B,) = 1 - dt/tau per set; I (steps, N). */
void seed_euler(dgemv_fn gemv, dgemm_fn gemm, int64_t B, int64_t N, int64_t steps,
                const double *Wk, const double *a, const double *I, double dt, double eta,
                double *v, double *rec, double *r)
{
    const int64_t BN = B * N;
    const double *x = v;                               /* the state: v, then a record row */
    for (int64_t t = 0; t < steps; ++t) {
        double *o = rec + t * BN;
        for (int64_t i = 0; i < BN; ++i)
            r[i] = tanh(x[i]);
        if (B == 1)                                    /* o = Wk @ r */
            gemv(ROW_MAJOR, NO_TRANS, N, N, 1.0, Wk, N, r, 1, 0.0, o, 1);
        else                                           /* o = r @ Wk^T, all sets at once */
            gemm(ROW_MAJOR, NO_TRANS, TRANS, B, N, N, 1.0, r, N, Wk, N, 0.0, o, N);
        const double *u = I + t * N;
        for (int64_t b = 0; b < B; ++b) {
            const double ab = a[b];
            const double *xb = x + b * N;
            double *ob = o + b * N;
            for (int64_t j = 0; j < N; ++j)
                ob[j] += ab * xb[j] + dt * (u[j] + eta);
        }
        x = o;
    }
    if (steps > 0)
        memcpy(v, x, (size_t)BN * sizeof(double));
}

/* The single-unit circuits: y the state (in and out), p the constants, rec[t] the output. */

/* QIF mean field, Euler; y = (r, v), p = (tau, Delta, eta, J, I_ext); rec = r. */
void qif_euler(int64_t steps, double dt, const double *p, double *y, double *rec)
{
    const double tau = p[0], Delta = p[1], eta = p[2], J = p[3], I = p[4], pi = M_PI;
    double r = y[0], v = y[1];
    for (int64_t t = 0; t < steps; ++t) {
        const double prt = pi * r * tau;
        const double dr = (Delta / (pi * tau) + 2.0 * r * v) / tau;
        const double dv = (v * v + eta + I + J * r * tau - prt * prt) / tau;
        r += dt * dr;
        v += dt * dv;
        rec[t] = r;
    }
    y[0] = r; y[1] = v;
}

/* Jansen-Rit, Euler; y = (pv, px, qv, qx, ev, ex, iv, ix): potential and derivative of the
   pyramidal cells' excitatory and inhibitory synapses and of the two interneurons;
   p = (he, te, hi, ti, u, e0, s, v_thr); rec = pv + qv. */
void jr_euler(int64_t steps, double dt, const double *p, double *y, double *rec)
{
    const double he = p[0], te = p[1], hi = p[2], ti = p[3], u = p[4], e2 = 2.0 * p[5], s = p[6], vt = p[7];
    double pv = y[0], px = y[1], qv = y[2], qx = y[3], ev = y[4], ex = y[5], iv = y[6], ix = y[7];
    for (int64_t t = 0; t < steps; ++t) {
        const double m_pc = e2 / (1.0 + exp(s * (vt - (pv + qv))));
        const double m_e = e2 / (1.0 + exp(s * (vt - ev)));
        const double m_i = e2 / (1.0 + exp(s * (vt - iv)));
        const double dpx = he * (108.0 * m_e + u) / te - 2.0 * px / te - pv / (te * te);
        const double dqx = hi * 33.75 * m_i / ti - 2.0 * qx / ti - qv / (ti * ti);
        const double dex = he * 135.0 * m_pc / te - 2.0 * ex / te - ev / (te * te);
        const double dix = he * 33.75 * m_pc / te - 2.0 * ix / te - iv / (te * te);
        pv += dt * px; px += dt * dpx;
        qv += dt * qx; qx += dt * dqx;
        ev += dt * ex; ex += dt * dex;
        iv += dt * ix; ix += dt * dix;
        rec[t] = pv + qv;
    }
    y[0] = pv; y[1] = px; y[2] = qv; y[3] = qx; y[4] = ev; y[5] = ex; y[6] = iv; y[7] = ix;
}

static double exprel(double x)   /* (exp(x) - 1)/x, 1 at x = 0 */
{
    return fabs(x) < 1e-6 ? 1.0 + x / 2 + x * x / 6 : expm1(x) / x;
}

/* Hodgkin-Huxley: d = f(y) for y = (v, m, h, n); p = (I_ext, C_m, g_Na, g_K, g_L, E_Na, E_K, E_L). */
static void hh_f(const double *p, const double *y, double *d)
{
    const double v = y[0], m = y[1], h = y[2], n = y[3];
    const double alpha_m = 1.0 / exprel(-(v + 40.0) / 10.0), beta_m = 4.0 * exp(-(v + 65.0) / 18.0);
    const double alpha_h = 0.07 * exp(-(v + 65.0) / 20.0), beta_h = 1.0 / (1.0 + exp(-(v + 35.0) / 10.0));
    const double alpha_n = 0.1 / exprel(-(v + 55.0) / 10.0), beta_n = 0.125 * exp(-(v + 65.0) / 80.0);
    d[0] = (p[0] - p[2] * m * m * m * h * (v - p[5]) - p[3] * n * n * n * n * (v - p[6])
            - p[4] * (v - p[7])) / p[1];
    d[1] = alpha_m * (1.0 - m) - beta_m * m;
    d[2] = alpha_h * (1.0 - h) - beta_h * h;
    d[3] = alpha_n * (1.0 - n) - beta_n * n;
}

/* Hodgkin-Huxley, classic RK4 (the input held over a step); rec = v. */
void hh_rk4(int64_t steps, double dt, const double *p, double *y, double *rec)
{
    double k1[4], k2[4], k3[4], k4[4], x[4];
    for (int64_t t = 0; t < steps; ++t) {
        hh_f(p, y, k1);
        for (int i = 0; i < 4; ++i) x[i] = y[i] + dt / 2 * k1[i];
        hh_f(p, x, k2);
        for (int i = 0; i < 4; ++i) x[i] = y[i] + dt / 2 * k2[i];
        hh_f(p, x, k3);
        for (int i = 0; i < 4; ++i) x[i] = y[i] + dt * k3[i];
        hh_f(p, x, k4);
        for (int i = 0; i < 4; ++i) y[i] += dt / 6 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i]);
        rec[t] = y[0];
    }
}
"""

# (dgemv, dgemm, integer width) in the order tried: NumPy's wheel (scipy-openblas, ILP64), an
# OpenBLAS built with the 64_ suffix, then a plain LP64 CBLAS.
_SYMBOLS = (("scipy_cblas_dgemv64_", "scipy_cblas_dgemm64_", "int64_t"),
            ("cblas_dgemv64_", "cblas_dgemm64_", "int64_t"),
            ("scipy_cblas_dgemv", "scipy_cblas_dgemm", "int32_t"),
            ("cblas_dgemv", "cblas_dgemm", "int32_t"))


class Unavailable(Exception):
    """No C compiler, or no CBLAS found in NumPy's BLAS: the contender is skipped."""


def c_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _blas_paths(package: str) -> list[str]:
    """The BLAS libraries a wheel of `package` (numpy, scipy) ships in <package>.libs; for NumPy,
    also those this process has mapped (Linux: a NumPy built against a system BLAS)."""
    site = os.path.dirname(os.path.dirname(np.__file__))
    found = sorted(glob.glob(os.path.join(site, f"{package}.libs", "*blas*.so*")))
    if package != "numpy":
        return found
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                name = os.path.basename(path).lower()
                if "blas" in name and name.startswith("lib") and "scipy.libs" not in path and path not in found:
                    found.append(path)
    except OSError:
        pass
    return found


def find_cblas(package: str = "numpy") -> tuple[int, int, str, str]:
    """(dgemv address, dgemm address, C integer type, "library:symbol") of `package`'s BLAS."""
    for path in _blas_paths(package):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for gemv, gemm, int_type in _SYMBOLS:
            try:
                fv, fm = getattr(lib, gemv), getattr(lib, gemm)
            except AttributeError:
                continue
            return (ctypes.cast(fv, ctypes.c_void_p).value, ctypes.cast(fm, ctypes.c_void_p).value,
                    int_type, f"{os.path.basename(path)}:{gemv}")
    raise Unavailable(f"skipped: no CBLAS dgemv/dgemm found in {package}'s BLAS")


def build(blas: str | None = "numpy") -> tuple[ctypes.CDLL, int, int, str]:
    """Compile the C loops for `blas` ("numpy" or "scipy": the package whose BLAS the seed loop
    calls; None for the circuits alone); (library, dgemv, dgemm, "library:symbol")."""
    cc = c_compiler()
    if cc is None:
        raise Unavailable("skipped: no C compiler (set CC, or install cc/gcc)")
    gemv, gemm, int_type, which = find_cblas(blas) if blas else (0, 0, "int64_t", "no BLAS")
    with tempfile.TemporaryDirectory(prefix="modelc-bench-c-") as d:
        src, lib = os.path.join(d, "seed.c"), os.path.join(d, "seed.so")
        with open(src, "w") as f:
            f.write(_SOURCE)
        cmd = [cc, "-O3", "-march=native", "-fPIC", "-shared", f"-DBLASINT={int_type}", src, "-o", lib, "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[:300]}")
        so = ctypes.CDLL(lib)  # mapped now: the file may go with the folder
    dbl = ctypes.POINTER(ctypes.c_double)
    so.seed_euler.restype = None
    so.seed_euler.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_int64, dbl, dbl, dbl, ctypes.c_double, ctypes.c_double,
                              dbl, dbl, dbl]
    for circuit in _CIRCUITS.values():
        fn = getattr(so, circuit)
        fn.restype = None
        fn.argtypes = [ctypes.c_int64, ctypes.c_double, dbl, dbl, dbl]
    return so, gemv, gemm, which


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


class SeedLoop:
    """The seed network (N units) or the sweep (B sets of tau), Euler, through the C loop."""

    def __init__(self, wl, data, blas: str = "numpy"):
        if wl.method != "euler":
            raise ValueError("the hand-written C loop is Euler only")
        self.so, self.gemv, self.gemm, self.blas = build(blas)
        taus = np.asarray(data.get("taus", [SEED_PARAMS["tau"]]), dtype=float)
        self.dt, self.steps, self.N, self.batched = wl.dt, wl.steps, wl.N, wl.family == "sweep"
        self.Wk = np.ascontiguousarray(data["J"] * (wl.dt * SEED_PARAMS["k"]))
        self.a = np.ascontiguousarray(1.0 - wl.dt / taus)
        self.I = np.ascontiguousarray(data["inputs"], dtype=float)
        self.v = np.zeros((len(taus), wl.N))
        self.r = np.empty_like(self.v)
        self.rec = np.empty((wl.steps,) + self.v.shape)

    def reset(self):
        self.v[...] = 0.0

    def run(self, steps=None):
        steps = self.steps if steps is None else steps
        B = self.v.shape[0]
        self.so.seed_euler(self.gemv, self.gemm, B, self.N, steps, _ptr(self.Wk), _ptr(self.a),
                           _ptr(self.I), self.dt, SEED_PARAMS["eta"], _ptr(self.v), _ptr(self.rec),
                           _ptr(self.r))

    def final_state(self):
        return self.v.copy() if self.batched else self.v[0].copy()   # a sweep's is (B, N), even for B = 1


_CIRCUITS = {("qif", "euler"): "qif_euler", ("jr", "euler"): "jr_euler", ("hh", "rk4"): "hh_rk4"}


class CircuitLoop:
    """A single-unit circuit (QIF, Jansen-Rit, Hodgkin-Huxley) through its C loop, with the
    constants and the initial state of the hand-written float loop of the same workload."""

    def __init__(self, wl, data):
        from . import handwritten
        key = (wl.family, wl.method)
        if key not in _CIRCUITS:
            raise ValueError(f"no C loop for {wl.family} with {wl.method}")
        self.so = build(blas=None)[0]
        self.fn = getattr(self.so, _CIRCUITS[key])
        floats = handwritten.for_workload(wl, data)
        self.p = np.array(floats.c, dtype=float)
        self.y0 = np.array(getattr(floats, "y0", floats.y), dtype=float)
        self.y = self.y0.copy()
        self.dt, self.steps = wl.dt, wl.steps
        self.rec = np.empty(wl.steps)

    def reset(self):
        self.y[...] = self.y0

    def run(self, steps=None):
        self.fn(self.steps if steps is None else steps, self.dt, _ptr(self.p), _ptr(self.y), _ptr(self.rec))

    def final_state(self):
        return self.y.copy()


def for_workload(wl, data, blas: str = "numpy"):
    if wl.family in ("seed", "sweep"):
        return SeedLoop(wl, data, blas)
    return CircuitLoop(wl, data)
