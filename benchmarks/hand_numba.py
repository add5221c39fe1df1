"""The seed step written by hand in numba (the compiled backend's floor, issue 17): one fused
loop for tanh, BLAS for the coupling (gemv, or gemm over a sweep's B sets), one fused update.
Euler only (the seed and sweep workloads); v = (1 - dt/tau)*v + (dt*k*J) @ tanh(v) + dt*(I + eta)."""
from __future__ import annotations

import numpy as np
from numba import njit

from .workloads import SEED_PARAMS


@njit(cache=True, nogil=True)
def _euler(v, Jk, JkT, a, I, dt, eta, rec, steps):
    """v (B, N) in place; a (B, 1) = 1 - dt/tau; I (steps, N); rec (steps, B, N)."""
    B, N = v.shape
    r = np.empty((B, N))
    p = np.empty((B, N))
    for t in range(steps):
        for b in range(B):
            for j in range(N):
                r[b, j] = np.tanh(v[b, j])
        if B == 1:
            np.dot(Jk, r[0], p[0])
        else:
            np.dot(r, JkT, p)
        for b in range(B):
            for j in range(N):
                v[b, j] = a[b, 0] * v[b, j] + p[b, j] + dt * (I[t, j] + eta)
                rec[t, b, j] = v[b, j]


class SeedLoop:
    def __init__(self, wl, data):
        if wl.method != "euler":
            raise ValueError("the hand-written numba loop is Euler only")
        taus = data.get("taus", np.array([SEED_PARAMS["tau"]]))
        self.dt, self.steps, self.batched = wl.dt, wl.steps, wl.family == "sweep"
        self.Jk = np.ascontiguousarray(data["J"] * (wl.dt * SEED_PARAMS["k"]))
        self.JkT = np.ascontiguousarray(self.Jk.T)
        self.a = (1.0 - wl.dt / taus)[:, None] * np.ones((wl.B if wl.family == "sweep" else 1, 1))
        self.I = np.ascontiguousarray(data["inputs"], dtype=float)
        self.v = np.zeros((self.a.shape[0], wl.N))
        self.rec = np.empty((wl.steps,) + self.v.shape)

    def run(self, steps=None):
        self.v[...] = 0.0
        _euler(self.v, self.Jk, self.JkT, self.a, self.I, self.dt, SEED_PARAMS["eta"], self.rec, steps or self.steps)

    def final_state(self):
        return self.v if self.batched else self.v[0]   # a sweep's is (B, N), even for B = 1


def for_workload(wl, data):
    return SeedLoop(wl, data)
