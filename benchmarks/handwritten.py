"""Hand-written reference loops: the baseline every contender is divided by.

Written as well as NumPy allows: every buffer preallocated, every update in place (``out=``),
loop invariants hoisted (``dt*k*J``, ``1 - dt/tau``), the input term scaled for all steps with
one array operation before the loop, and the record row doubling as the next state (no copy).
The single systems (QIF, Jansen-Rit) have one unit each, where NumPy's per-call overhead would
dominate, so their loops use Python floats -- the fastest plain-Python way to write them.

Every loop records the output (``v`` for the seed network, ``r`` for QIF, the pyramidal
potential for Jansen-Rit) after every step, as ``Network.run`` does.
"""
from __future__ import annotations

import math

import numpy as np

from .workloads import SEED_PARAMS, Workload


class SeedEuler:
    """v' = -v/tau + k*J@tanh(v) + I_ext + eta, explicit Euler, N units (or a (B, N) batch of tau)."""

    def __init__(self, J, inputs, dt, tau=SEED_PARAMS["tau"], k=SEED_PARAMS["k"],
                 eta=SEED_PARAMS["eta"], batch_tau=None):
        T, N = inputs.shape
        self.inputs, self.dt, self.eta = inputs, dt, eta
        self.W = (dt * k) * J                            # hoisted: dt*k*J
        self.WT = None if batch_tau is None else self.W.T   # batched: V @ W.T (a view)
        shape = (N,) if batch_tau is None else (len(batch_tau), N)
        if batch_tau is None:
            self.a = 1.0 - dt / tau                       # hoisted: 1 - dt/tau
        else:
            self.a = (1.0 - dt / np.asarray(batch_tau, float))[:, None]
        self.U = np.empty_like(inputs)                    # dt*(I_ext + eta) for all steps
        self.out = np.empty((T,) + shape)                 # the record; row t = v after step t+1
        self.v0 = np.zeros(shape)
        self.r = np.empty(shape)
        self.tmp = np.empty(shape)
        self.v = self.v0

    def run(self):
        np.multiply(self.inputs, self.dt, out=self.U)
        if self.eta:
            self.U += self.dt * self.eta
        W, U, a, r, tmp, out = self.W, self.U, self.a, self.r, self.tmp, self.out
        tanh, multiply = np.tanh, np.multiply
        v = self.v0
        if v.ndim == 1:
            dot = np.dot
            for t in range(U.shape[0]):
                o = out[t]
                tanh(v, out=r)
                dot(W, r, out=o)          # o = dt*k*J @ tanh(v)
                o += U[t]                 #   + dt*(I + eta)
                multiply(v, a, out=tmp)
                o += tmp                  #   + (1 - dt/tau)*v
                v = o                     # the record row is the new state
        else:
            matmul, WT = np.matmul, self.WT
            for t in range(U.shape[0]):
                o = out[t]
                tanh(v, out=r)
                matmul(r, WT, out=o)      # (B, N): one matrix-matrix product for all sets
                o += U[t]
                multiply(v, a, out=tmp)
                o += tmp
                v = o
        self.v = v

    def final_state(self):
        return np.array(self.v)


class SeedRK4:
    """The seed network with the classic 4th-order Runge-Kutta scheme (input held over a step)."""

    def __init__(self, J, inputs, dt, tau=SEED_PARAMS["tau"], k=SEED_PARAMS["k"],
                 eta=SEED_PARAMS["eta"]):
        T, N = inputs.shape
        self.inputs, self.dt, self.eta = inputs, dt, eta
        self.Jk = k * J
        self.inv_tau = 1.0 / tau
        self.Ue = np.empty_like(inputs)                   # I_ext + eta for all steps
        self.out = np.empty((T, N))
        self.v0 = np.zeros(N)
        self.k1, self.k2, self.k3, self.k4 = (np.empty(N) for _ in range(4))
        self.x, self.r, self.tmp = np.empty(N), np.empty(N), np.empty(N)
        self.v = self.v0

    def run(self):
        np.add(self.inputs, self.eta, out=self.Ue)
        Jk, Ue, c, out = self.Jk, self.Ue, -self.inv_tau, self.out
        k1, k2, k3, k4, x, r, tmp = self.k1, self.k2, self.k3, self.k4, self.x, self.r, self.tmp
        h = self.dt
        h2, h6, h3 = h / 2.0, h / 6.0, h / 3.0
        tanh, dot, multiply = np.tanh, np.dot, np.multiply

        def f(y, u, d):                    # d = Jk @ tanh(y) - y/tau + u
            tanh(y, out=r)
            dot(Jk, r, out=d)
            multiply(y, c, out=tmp)
            d += tmp
            d += u

        v = self.v0
        for t in range(Ue.shape[0]):
            u = Ue[t]
            f(v, u, k1)
            multiply(k1, h2, out=x); x += v
            f(x, u, k2)
            multiply(k2, h2, out=x); x += v
            f(x, u, k3)
            multiply(k3, h, out=x); x += v
            f(x, u, k4)
            o = out[t]
            k1 += k4
            k2 += k3
            multiply(k1, h6, out=o)
            o += v
            multiply(k2, h3, out=k2)
            o += k2
            v = o
        self.v = v

    def final_state(self):
        return np.array(self.v)


class SeedSequential:
    """The sweep done the slow way: one hand-written Euler loop per parameter set."""

    def __init__(self, J, inputs, dt, taus):
        self.loops = [SeedEuler(J, inputs, dt, tau=float(t)) for t in taus]

    def run(self):
        for lp in self.loops:
            lp.run()

    def final_state(self):
        return np.stack([lp.final_state() for lp in self.loops])


QIF_STATES = ("qif_op/r", "qif_op/v")


class QIF:
    """QIF mean field (benchmarks/models/nmm.yaml:qif), Euler, Python floats."""

    def __init__(self, steps, dt, I_ext, tau=1.0, Delta=1.0, eta=-5.0, J=15.0):
        self.steps, self.dt = steps, dt
        self.c = (tau, Delta, eta, J, I_ext)
        self.out = np.empty(steps)
        self.y = (0.01, -2.0)

    def run(self):
        tau, Delta, eta, J, I = self.c
        dt, out = self.dt, self.out
        pi = math.pi
        a = Delta / (pi * tau) / tau * dt          # hoisted constants
        b = 2.0 / tau * dt
        g = (eta + I) / tau * dt
        q = dt / tau
        jt = J * tau
        pt2 = (pi * tau) ** 2
        r, v = 0.01, -2.0
        for t in range(self.steps):
            r, v = r + a + b * r * v, v + q * (v * v + jt * r - pt2 * r * r) + g
            out[t] = r
        self.y = (r, v)

    def final_state(self):
        return np.array(self.y)


JR_STATES = ("pc/rpo_e_in_op/v", "pc/rpo_e_in_op/x", "pc/rpo_i_op/v", "pc/rpo_i_op/x",
             "ein/rpo_op/v", "ein/rpo_op/x", "iin/rpo_op/v", "iin/rpo_op/x")


class JansenRit:
    """Jansen-Rit circuit (benchmarks/models/nmm.yaml:JRC), Euler, Python floats, in the
    circuit's own layout (8 states: potential v and derivative x of each synapse)."""

    def __init__(self, steps, dt):
        self.steps, self.dt = steps, dt
        self.out = np.empty(steps)
        self.y = (0.0,) * 8

    def run(self):
        dt, out, exp = self.dt, self.out, math.exp
        he, te, hi, ti, u = 3.25, 0.01, -22.0, 0.02, 220.0
        e2, s, vt = 5.0, 0.56, 6.0
        ae, ai = he / te, hi / ti                  # h/tau
        be, bi = 2.0 / te, 2.0 / ti                # 2/tau
        ce, ci = 1.0 / te ** 2, 1.0 / ti ** 2      # 1/tau^2
        pv, px, qv, qx, ev, ex, iv, ix = (0.0,) * 8
        for t in range(self.steps):
            m_pc = e2 / (1.0 + exp(s * (vt - (pv + qv))))
            m_e = e2 / (1.0 + exp(s * (vt - ev)))
            m_i = e2 / (1.0 + exp(s * (vt - iv)))
            pv, px = pv + dt * px, px + dt * (ae * (108.0 * m_e + u) - be * px - ce * pv)
            qv, qx = qv + dt * qx, qx + dt * (ai * 33.75 * m_i - bi * qx - ci * qv)
            ev, ex = ev + dt * ex, ex + dt * (ae * 135.0 * m_pc - be * ex - ce * ev)
            iv, ix = iv + dt * ix, ix + dt * (ae * 33.75 * m_pc - be * ix - ce * iv)
            out[t] = pv + qv
        self.y = (pv, px, qv, qx, ev, ex, iv, ix)

    def final_state(self):
        return np.array(self.y)


def for_workload(wl: Workload, data: dict):
    """The hand-written loop that serves as the baseline of a workload."""
    if wl.family == "seed":
        cls = SeedEuler if wl.method == "euler" else SeedRK4
        return cls(data["J"], data["inputs"], wl.dt)
    if wl.family == "sweep":
        return SeedEuler(data["J"], data["inputs"], wl.dt, batch_tau=data["taus"])
    if wl.family == "qif":
        return QIF(wl.steps, wl.dt, data["I_ext"])
    if wl.family == "jr":
        return JansenRit(wl.steps, wl.dt)
    raise ValueError(wl.family)
