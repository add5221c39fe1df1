"""Hand-written reference loops.

Two kinds for the seed network (and the sweep):

- **in place** (``SeedEulerInPlace``, ``SeedRK4InPlace``; the baseline every contender is divided
  by and compared with -- "the hand-written in-place loop" of issues 2 and 6): every buffer
  preallocated, every update in place (``out=``, ``+=``), but written the way the equations read,
  step by step: ``r = tanh(v)``, ``J @ r``, ``dv = -v/tau + k*(J@r) + I[t] + eta``,
  ``v += dt*dv``, ``rec[t] = v``.  No invariant hoisted, no input term precomputed, no record-row
  trick -- what someone fluent in NumPy writes without thinking like a compiler.
- **optimised** (``SeedEuler``, ``SeedRK4``; a contender row, "the compiler's tricks by hand"):
  the same, plus what modelc's code generator does -- loop invariants hoisted (``dt*k*J``,
  ``1 - dt/tau``), the input term scaled for all steps with one array operation before the loop,
  and the record row doubling as the next state (no copy).  A floor, not the issues' baseline.

The single systems (QIF, Jansen-Rit, Hodgkin-Huxley) have one unit each, where NumPy's per-call overhead would
dominate, so their loops use Python floats -- the natural way to hand-write them; they are the
baseline there.

Every loop records the output (``v`` for the seed network, ``r`` for QIF, the pyramidal
potential for Jansen-Rit) after every step, as ``Network.run`` does.
"""
from __future__ import annotations

import math

import numpy as np

from .workloads import SEED_PARAMS, Workload


# ----------------------------------------------------------------------------- in place (baseline)

class SeedEulerInPlace:
    """v' = -v/tau + k*J@tanh(v) + I_ext + eta, explicit Euler, written as the equation reads,
    in place into preallocated buffers; N units, or a (B, N) batch with a (B,) array of tau."""

    def __init__(self, J, inputs, dt, tau=SEED_PARAMS["tau"], k=SEED_PARAMS["k"],
                 eta=SEED_PARAMS["eta"], batch_tau=None):
        T, N = inputs.shape
        self.J, self.inputs, self.dt, self.k, self.eta = J, inputs, dt, k, eta
        if batch_tau is None:
            shape, self.tau = (N,), tau
        else:
            shape, self.tau = (len(batch_tau), N), np.asarray(batch_tau, float)[:, None]
        self.rec = np.empty((T,) + shape)                 # rec[t] = v after step t+1
        self.v = np.zeros(shape)
        self.r, self.Jr, self.dv, self.tmp = (np.empty(shape) for _ in range(4))

    def run(self):
        J, I, dt, tau, k, eta = self.J, self.inputs, self.dt, self.tau, self.k, self.eta
        v, r, Jr, dv, tmp, rec = self.v, self.r, self.Jr, self.dv, self.tmp, self.rec
        v.fill(0.0)                                       # v(0) = 0
        if v.ndim == 1:
            for t in range(I.shape[0]):
                np.tanh(v, out=r)                         # r = tanh(v)
                np.dot(J, r, out=Jr)                      # J @ r
                np.multiply(Jr, k, out=dv)                # dv = k*(J@r)
                np.divide(v, tau, out=tmp)
                dv -= tmp                                 #    - v/tau
                dv += I[t]                                #    + I[t]
                dv += eta                                 #    + eta
                np.multiply(dv, dt, out=tmp)
                v += tmp                                  # v += dt*dv
                rec[t] = v
        else:
            JT = J.T
            for t in range(I.shape[0]):
                np.tanh(v, out=r)
                np.matmul(r, JT, out=Jr)                  # (B, N): r @ J.T for all sets
                np.multiply(Jr, k, out=dv)
                np.divide(v, tau, out=tmp)                # tau is (B, 1)
                dv -= tmp
                dv += I[t]
                dv += eta
                np.multiply(dv, dt, out=tmp)
                v += tmp
                rec[t] = v

    def final_state(self):
        return np.array(self.v)


class SeedRK4InPlace:
    """The seed network with the classic 4th-order Runge-Kutta scheme (input held over a step),
    written as the scheme reads, in place into preallocated buffers."""

    def __init__(self, J, inputs, dt, tau=SEED_PARAMS["tau"], k=SEED_PARAMS["k"],
                 eta=SEED_PARAMS["eta"]):
        T, N = inputs.shape
        self.J, self.inputs, self.dt, self.tau, self.k, self.eta = J, inputs, dt, tau, k, eta
        self.rec = np.empty((T, N))
        self.v = np.zeros(N)
        self.k1, self.k2, self.k3, self.k4 = (np.empty(N) for _ in range(4))
        self.x, self.r, self.Jr, self.tmp = (np.empty(N) for _ in range(4))

    def run(self):
        J, I, dt, tau, k, eta = self.J, self.inputs, self.dt, self.tau, self.k, self.eta
        v, rec = self.v, self.rec
        k1, k2, k3, k4, x, r, Jr, tmp = (self.k1, self.k2, self.k3, self.k4, self.x, self.r,
                                         self.Jr, self.tmp)
        v.fill(0.0)

        def f(y, u, d):                                   # d = -y/tau + k*(J@tanh(y)) + u + eta
            np.tanh(y, out=r)
            np.dot(J, r, out=Jr)
            np.multiply(Jr, k, out=d)
            np.divide(y, tau, out=tmp)
            d -= tmp
            d += u
            d += eta

        for t in range(I.shape[0]):
            u = I[t]
            f(v, u, k1)                                   # k1 = f(v)
            np.multiply(k1, dt / 2, out=x)
            x += v
            f(x, u, k2)                                   # k2 = f(v + dt/2*k1)
            np.multiply(k2, dt / 2, out=x)
            x += v
            f(x, u, k3)                                   # k3 = f(v + dt/2*k2)
            np.multiply(k3, dt, out=x)
            x += v
            f(x, u, k4)                                   # k4 = f(v + dt*k3)
            np.add(k2, k3, out=x)                         # v += dt/6*(k1 + 2*k2 + 2*k3 + k4)
            x *= 2
            x += k1
            x += k4
            x *= dt / 6
            v += x
            rec[t] = v

    def final_state(self):
        return np.array(self.v)


# ----------------------------------------------------------------------------- optimised (contender)

class SeedEuler:
    """v' = -v/tau + k*J@tanh(v) + I_ext + eta, explicit Euler, N units (or a (B, N) batch of
    tau), with the compiler's tricks applied by hand (see the module docstring)."""

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
    """The seed network with the classic 4th-order Runge-Kutta scheme (input held over a step),
    with k*J and the input term I_ext + eta prepared before the loop, the record row as state."""

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
    """The sweep done the slow way: one hand-written in-place Euler loop per parameter set."""

    def __init__(self, J, inputs, dt, taus):
        self.loops = [SeedEulerInPlace(J, inputs, dt, tau=float(t)) for t in taus]

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
        self.c = (3.25, 0.01, -22.0, 0.02, 220.0, 2.5, 0.56, 6.0)   # he, te, hi, ti, u, e0, s, v_thr
        self.out = np.empty(steps)
        self.y = (0.0,) * 8

    def run(self):
        dt, out, exp = self.dt, self.out, math.exp
        he, te, hi, ti, u, e0, s, vt = self.c
        e2 = 2.0 * e0
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


HH_STATES = ("hh_op/v", "hh_op/m", "hh_op/h", "hh_op/n")


def _exprel(x):
    """(exp(x) - 1)/x, 1 at x = 0 (the model file's exprel; the same series near 0 as modelc's)."""
    return 1.0 + x / 2 + x * x / 6 if abs(x) < 1e-6 else math.expm1(x) / x


class HodgkinHuxley:
    """Hodgkin-Huxley (models/neuron_model_templates/conductance/hodgkin_huxley.yaml, rest at
    -65 mV), classic RK4, Python floats: one derivative function called per stage, as the
    equations read; the input held over a step."""

    def __init__(self, steps, dt, I_ext, C_m=1.0, g_Na=120.0, g_K=36.0, g_L=0.3, E_Na=50.0,
                 E_K=-77.0, E_L=-54.387):
        self.steps, self.dt = steps, dt
        self.c = (I_ext, C_m, g_Na, g_K, g_L, E_Na, E_K, E_L)
        self.out = np.empty(steps)
        self.y0 = (-65.0, 0.05293248525724958, 0.5961207535084603, 0.3176769140606974)
        self.y = self.y0

    def run(self):
        I, C_m, g_Na, g_K, g_L, E_Na, E_K, E_L = self.c
        exp, exprel = math.exp, _exprel

        def f(v, m, h, n):
            alpha_m = 1.0 / exprel(-(v + 40.0) / 10.0)
            beta_m = 4.0 * exp(-(v + 65.0) / 18.0)
            alpha_h = 0.07 * exp(-(v + 65.0) / 20.0)
            beta_h = 1.0 / (1.0 + exp(-(v + 35.0) / 10.0))
            alpha_n = 0.1 / exprel(-(v + 55.0) / 10.0)
            beta_n = 0.125 * exp(-(v + 65.0) / 80.0)
            dv = (I - g_Na * m ** 3 * h * (v - E_Na) - g_K * n ** 4 * (v - E_K) - g_L * (v - E_L)) / C_m
            return (dv, alpha_m * (1.0 - m) - beta_m * m, alpha_h * (1.0 - h) - beta_h * h,
                    alpha_n * (1.0 - n) - beta_n * n)

        dt, out = self.dt, self.out
        h2, h6 = dt / 2.0, dt / 6.0
        v, m, h, n = self.y0
        for t in range(self.steps):
            a1, b1, c1, d1 = f(v, m, h, n)
            a2, b2, c2, d2 = f(v + h2 * a1, m + h2 * b1, h + h2 * c1, n + h2 * d1)
            a3, b3, c3, d3 = f(v + h2 * a2, m + h2 * b2, h + h2 * c2, n + h2 * d2)
            a4, b4, c4, d4 = f(v + dt * a3, m + dt * b3, h + dt * c3, n + dt * d3)
            v += h6 * (a1 + 2.0 * (a2 + a3) + a4)
            m += h6 * (b1 + 2.0 * (b2 + b3) + b4)
            h += h6 * (c1 + 2.0 * (c2 + c3) + c4)
            n += h6 * (d1 + 2.0 * (d2 + d3) + d4)
            out[t] = v
        self.y = (v, m, h, n)

    def final_state(self):
        return np.array(self.y)


def for_workload(wl: Workload, data: dict):
    """The hand-written loop that serves as the baseline of a workload (in place for the seed
    network and the sweep, Python floats for the single systems)."""
    if wl.family == "seed":
        cls = SeedEulerInPlace if wl.method == "euler" else SeedRK4InPlace
        return cls(data["J"], data["inputs"], wl.dt)
    if wl.family == "sweep":
        return SeedEulerInPlace(data["J"], data["inputs"], wl.dt, batch_tau=data["taus"])
    if wl.family == "qif":
        return QIF(wl.steps, wl.dt, data["I_ext"])
    if wl.family == "jr":
        return JansenRit(wl.steps, wl.dt)
    if wl.family == "hh":
        if wl.method != "rk4":
            raise ValueError("the hand-written Hodgkin-Huxley loop is RK4")
        return HodgkinHuxley(wl.steps, wl.dt, data["I_ext"])
    raise ValueError(wl.family)


def optimised_for_workload(wl: Workload, data: dict):
    """The seed network's loop with the compiler's tricks applied by hand (a contender)."""
    if wl.family == "seed":
        cls = SeedEuler if wl.method == "euler" else SeedRK4
        return cls(data["J"], data["inputs"], wl.dt)
    if wl.family == "sweep":
        return SeedEuler(data["J"], data["inputs"], wl.dt, batch_tau=data["taus"])
    raise ValueError(wl.family)
