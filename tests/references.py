"""Independent references for the conformance suite (tests/test_conformance.py) and the random
graph test (tests/test_graphs.py).

Nothing here touches the code generator: the right-hand side is the IR's SymPy expressions
(`System.derivatives`, `System.algebraics`) turned into NumPy functions by `sympy.lambdify`
(no Plan, no printer, no template of modelc's), and the integration schemes are written out
from their textbook formulas, one function each. A generic Butcher-tableau loop is here too,
for a scheme that has no textbook function yet (and to check modelc's tableaux against the
textbook functions).

Conventions (the generated module's contract, README "The generated module"):

* arrays have shape (batch..., n); every population has its own n;
* step k advances the state from t0 + k*dt to t0 + (k+1)*dt and sees row k of every input
  (the same row at every stage; stage i is evaluated at time t0 + k*dt + c_i*dt);
* row r of a record is the value after step (r+1)*sampling_steps; an algebraic variable is
  recorded from the new state, the input row of the step just taken and the new time.
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Callable

import numpy as np
import sympy

from modelc.equations import Exprel, PopMean, PopSum
from modelc.equations.functions import Delayed
from modelc.ir import Input, MatVec, System

# --- the schemes, from their textbook formulas ------------------------------------------------
# f(t, y) -> dy/dt with y a dict {state name: array}; each function returns the state after one step.


def _axpy(y: dict, terms) -> dict:
    """y + sum(c * k for c, k in terms), name by name."""
    out = {}
    for name, value in y.items():
        total = value
        for c, k in terms:
            total = total + c * k[name]
        out[name] = total
    return out


def euler_step(f, t, y, dt):
    """Forward Euler: y + dt f(t, y)."""
    return _axpy(y, [(dt, f(t, y))])


def heun_step(f, t, y, dt):
    """Heun (explicit trapezoid): k1 = f(t, y), k2 = f(t + dt, y + dt k1), y + dt/2 (k1 + k2)."""
    k1 = f(t, y)
    k2 = f(t + dt, _axpy(y, [(dt, k1)]))
    return _axpy(y, [(dt / 2, k1), (dt / 2, k2)])


def midpoint_step(f, t, y, dt):
    """Explicit midpoint: k1 = f(t, y), k2 = f(t + dt/2, y + dt/2 k1), y + dt k2."""
    k1 = f(t, y)
    k2 = f(t + dt / 2, _axpy(y, [(dt / 2, k1)]))
    return _axpy(y, [(dt, k2)])


def rk4_step(f, t, y, dt):
    """Classic Runge-Kutta: y + dt/6 (k1 + 2 k2 + 2 k3 + k4)."""
    k1 = f(t, y)
    k2 = f(t + dt / 2, _axpy(y, [(dt / 2, k1)]))
    k3 = f(t + dt / 2, _axpy(y, [(dt / 2, k2)]))
    k4 = f(t + dt, _axpy(y, [(dt, k3)]))
    return _axpy(y, [(dt / 6, k1), (dt / 3, k2), (dt / 3, k3), (dt / 6, k4)])


TEXTBOOK = {"euler": euler_step, "heun": heun_step, "midpoint": midpoint_step, "rk4": rk4_step}
TEXTBOOK_ORDER = {"euler": 1, "heun": 2, "midpoint": 2, "rk4": 4}


def tableau_step(a, b, c) -> Callable:
    """A step of any explicit Runge-Kutta method given by its Butcher tableau (rows of a may be
    short or all zero: missing entries are 0)."""
    a = [[float(x) for x in row] for row in a]
    b, c = [float(x) for x in b], [float(x) for x in c]

    def step(f, t, y, dt):
        ks = []
        for i in range(len(b)):
            row = a[i] if i < len(a) else []
            ks.append(f(t + c[i] * dt, _axpy(y, [(dt * row[j], ks[j]) for j in range(len(row)) if row[j]])))
        return _axpy(y, [(dt * b[i], ks[i]) for i in range(len(b)) if b[i]])
    return step


def step_function(method: str):
    """The textbook step of a method; a scheme without one gets the generic tableau loop of
    modelc's own tableau (still a loop written here, not generated code)."""
    if method in TEXTBOOK:
        return TEXTBOOK[method]
    from modelc.codegen.options import get_scheme
    scheme = get_scheme(method)
    return tableau_step(scheme.a, scheme.b, scheme.c)


# --- the right-hand side of a System, through sympy.lambdify ----------------------------------

def _exprel(x):
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-8
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 + x / 2, np.expm1(safe) / safe)


def _pop_mean(x):
    return np.mean(x, axis=-1, keepdims=True) if np.ndim(x) else x


def _pop_sum(x):
    return np.sum(x, axis=-1, keepdims=True) if np.ndim(x) else x


def _matvec(w, x):
    """W @ x with x (..., n_source) and W (n_target, n_source): W[i, j] from unit j to unit i."""
    return np.einsum("ij,...j->...i", np.asarray(w, dtype=float), np.asarray(x, dtype=float))


_NAMESPACE = {MatVec.__name__: _matvec, Exprel.__name__: _exprel, PopMean.__name__: _pop_mean,
              PopSum.__name__: _pop_sum}


class Reference:
    """A System's equations as NumPy functions, evaluated population by population.

    Every state, parameter (not a weight matrix) and input is broadcast to its population's
    full shape before the expressions see it, so mean()/sum() reduce over the right n.
    """

    def __init__(self, system: System):
        self.system = system
        self.population_of = {name: label for label, names in system.populations.items() for name in names}
        names = list(system.states) + list(system.params) + list(system.inputs) + [n for n, _ in system.algebraics] + \
            [e.emit for e in system.events if e.emit]
        plain = {sympy.Symbol(name, real=True): sympy.Symbol(f"q{i}", real=True) for i, name in enumerate(names)}
        plain[sympy.Symbol("t", real=True)] = sympy.Symbol("time", real=True)
        self._back = {v.name: k.name for k, v in plain.items()}

        def compile_(expr):
            expr = sympy.sympify(expr).xreplace(plain)
            args = sorted(expr.free_symbols, key=lambda s: s.name)
            fn = sympy.lambdify(args, expr, modules=[_NAMESPACE, "numpy"])
            return fn, [self._back[s.name] for s in args]

        self.algebraics = [(name, *compile_(expr)) for name, expr in system.algebraics]
        self.derivatives = {name: compile_(expr) for name, expr in system.derivatives.items()}
        # events, as docs/events.md says: checked on the step's own states, H/dt for the whole
        # step, resets (all computed first) after the update, a refractory clock held above dt/2
        self.events = [(e, compile_(e.condition), [(state, compile_(value)) for state, value in e.resets],
                        compile_(e.duration) if e.duration is not None else None) for e in system.events]

    def _shape(self, name, shapes):
        label = self.population_of.get(name)
        return None if label is None else shapes[label]

    def _full(self, name, value, shapes):
        shape = self._shape(name, shapes)
        value = np.asarray(value, dtype=float)
        return value if shape is None else np.broadcast_to(value, np.broadcast_shapes(value.shape, shape))

    def values(self, values: dict, shapes) -> dict:
        """Parameters, inputs or states, each broadcast to its population's full shape."""
        return {name: self._full(name, value, shapes) for name, value in values.items()}

    def evaluate(self, t, y, env):
        """({state: dy/dt}, {algebraic: value}) at time t, from the states y and env: every
        parameter and this step's input values, already at their populations' full shapes."""
        quiet = {e.emit: 0.0 for e, *_ in self.events if e.emit}  # no spikes outside a run's events
        env = {**quiet, **env, **y, "t": np.float64(t)}  # NumPy's arithmetic for time too: (-2)**t is NaN, not complex
        computed = {}
        for name, fn, args in self.algebraics:
            env[name] = computed[name] = fn(*[env[a] for a in args])
        derivs = {name: fn(*[env[a] for a in args]) for name, (fn, args) in self.derivatives.items()}
        return derivs, computed

    def defaults(self):
        params = {name: p.default for name, p in self.system.params.items() if p.default is not None}
        inputs = {name: i.default for name, i in self.system.inputs.items()}
        return params, inputs

    def integrate(self, method, y0, params, inputs, dt, steps, shapes, record=None, sampling_steps=1, t0=0.0):
        """The reference run: {name: (steps // sampling_steps, *shape)} plus "final": {state: array}.

        shapes: {population label: (batch..., n)}; params/inputs missing from the arguments take
        the System's defaults; an input is a number or an array whose first axis is the step.
        """
        default_params, default_inputs = self.defaults()
        params = self.values({**default_params, **params}, shapes)
        inputs = {**default_inputs, **inputs}
        record = list(self.system.states) if record is None else list(record)
        step = step_function(method)
        y = self.values({name: y0.get(name, s.init) for name, s in self.system.states.items()}, shapes)
        y = {name: np.array(value) for name, value in y.items()}
        out = {name: [] for name in record}
        counts = {e.name: 0.0 for e, *_ in self.events}  # spikes in the current record row
        for k in range(steps):
            env = {**params, **self.values({name: (value[k] if np.ndim(value) else value)
                                           for name, value in inputs.items()}, shapes)}
            fired = self._check(t0 + k * dt, y, env, dt, shapes)

            def f(time, state, env=env):
                return self.evaluate(time, state, env)[0]

            y = self._reset(t0 + k * dt, step(f, t0 + k * dt, y, dt), env, fired, dt)
            for e, *_ in self.events:
                counts[e.name] = counts[e.name] + fired[e.name][0]
            if (k + 1) % sampling_steps == 0:
                _, computed = self.evaluate(t0 + (k + 1) * dt, y, env)
                computed.update(counts)
                counts = {name: 0.0 for name in counts}
                for name in record:
                    value = y[name] if name in y else computed[name]
                    out[name].append(np.array(self._full(name, value, shapes)))
        result = {name: np.array(values) for name, values in out.items()}
        result["final"] = {name: np.array(value) for name, value in y.items()}
        return result


    def _check(self, t, y, env, dt, shapes) -> dict:
        """{event: (fired, held)} on the step's own states; the spike trains go into env."""
        found = {}
        for e, (condition, args), _, _ in self.events:
            values = {**env, **y, "t": np.float64(t)}
            shape = np.shape(y[next(s for s in self.system.states if self.population_of[s] == self.population_of[e.name])])
            fired = np.broadcast_to(condition(*[values[a] for a in args]), shape).astype(bool)
            held = y[e.refractory] > dt / 2 if e.refractory else np.zeros(shape, bool)
            fired = fired & ~held
            if e.emit:
                env[e.emit] = fired / dt
            found[e.name] = (fired, held)
        return found

    def _reset(self, t, y, env, fired, dt) -> dict:
        y = dict(y)
        for e, _, resets, duration in self.events:
            spiked, held = fired[e.name]
            values = {**env, **y, "t": np.float64(t)}
            new = {state: fn(*[values[a] for a in args]) for state, (fn, args) in resets}  # all before any is set
            for state, value in new.items():
                y[state] = np.where(spiked | held, value, y[state])
            if e.refractory:
                fn, args = duration
                y[e.refractory] = np.where(spiked, fn(*[values[a] for a in args]), y[e.refractory])
        return y


# --- comparing --------------------------------------------------------------------------------

def assert_close(got, want, rtol, what="", atol=1e-14):
    """|got - want| <= rtol * max|want| + atol everywhere, with equal shapes and finite values."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert np.all(np.isfinite(want)), f"{what}: the reference is not finite (choose other arguments)"
    assert np.all(np.isfinite(got)), f"{what}: non-finite values"
    if not want.size:
        return
    scale = float(np.max(np.abs(want)))
    err = float(np.max(np.abs(got - want)))
    assert err <= rtol * scale + atol, f"{what}: max error {err:.3g} > {rtol:g} * {scale:.3g} + {atol:g}"


def relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))


# --- activations of function nodes, written out -------------------------------------------------

def _softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


ACTIVATIONS = {
    "identity": lambda x: x,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "softmax": _softmax,
    "softmin": lambda x: _softmax(-x),
    "log_softmax": lambda x: x - np.max(x, axis=-1, keepdims=True)
    - np.log(np.sum(np.exp(x - np.max(x, axis=-1, keepdims=True)), axis=-1, keepdims=True)),
}

__all__ = ["TEXTBOOK", "TEXTBOOK_ORDER", "Reference", "DelayedReference", "ACTIVATIONS", "assert_close", "relative_error",
           "step_function", "tableau_step", "euler_step", "heun_step", "midpoint_step", "rk4_step"]


# --- delays, from the rule of docs/delays.md ----------------------------------------------------

class DelayedReference(Reference):
    """A System with delayed values (past(x, tau), x(t - tau), an edge's delay, add_edge's
    delays=): each Delayed(x, tau, before) is a stand-in input whose value every evaluation
    reads from a history of x kept here by hand, as docs/delays.md ("What a run computes") says:

    * x_n, the value of x at the start of step n (a state, or a computed variable from the
      step's own inputs), joins the history at the step's start (where the events are checked);
    * a stage at time t_n + c*dt reads x at t_n + c*dt - tau, p = tau/dt - c steps before t_n:
      x_{n-p} where p is a whole number (to 1e-9), else (1 - f)*x_{n-i} + f*x_{n-i-1} with
      i = floor(p), f = p - i; tau may be one value per unit;
    * before t0, x is its value at t0 (past) or 0 (an edge's delay);
    * a computed variable recorded after step n reads x at t_{n+1} (c = 1).
    """

    def __init__(self, system: System):
        exprs = list(system.derivatives.values()) + [e for _, e in system.algebraics]
        found = sorted({d for e in exprs for d in e.atoms(Delayed)}, key=str)
        self.stand_ins = {d: sympy.Symbol(f"delayed_{k}", real=True) for k, d in enumerate(found)}
        inputs = {**system.inputs, **{s.name: Input(s.name, 0.0) for s in self.stand_ins.values()}}
        system = replace(system, inputs=inputs,
                         algebraics=[(n, e.xreplace(self.stand_ins)) for n, e in system.algebraics],
                         derivatives={n: e.xreplace(self.stand_ins) for n, e in system.derivatives.items()})
        super().__init__(system)
        self.delays = []  # (stand-in, delayed variable, before t0: its value at t0 (1) or 0, tau(params), tau's names)
        for d, stand_in in self.stand_ins.items():
            x, tau, before = d.args
            names = sorted(tau.free_symbols, key=lambda s: s.name)
            self.delays.append((stand_in.name, x.name, int(before),
                                sympy.lambdify(names, tau, modules="numpy", dummify=True), [s.name for s in names]))

    def integrate(self, method, y0, params, inputs, dt, steps, shapes, record=None, sampling_steps=1, t0=0.0):
        self._histories = {(x, before): [] for _, x, before, _, _ in self.delays}
        self._dt, self._shapes = dt, shapes
        return super().integrate(method, y0, params, inputs, dt, steps, shapes, record, sampling_steps, t0)

    def _check(self, t, y, env, dt, shapes) -> dict:
        """The step's start: x_n of every delayed variable joins its history (then the events' check)."""
        self._step = (sum(1 for _ in next(iter(self._histories.values()), [])), t)
        if self._step[0] == 0:  # before t0: past() reads the state's value at t0, an edge's delay 0
            self._before = {(x, before): np.array(self._full(x, y[x], shapes)) if before else
                            np.zeros(self._shape(x, shapes)) for x, before in self._histories}
        _, computed = self.evaluate(t, y, env)  # (stage 0 reads steps before this one only: tau >= dt)
        for (x, _), values in self._histories.items():
            values.append(np.array(self._full(x, y[x] if x in y else computed[x], shapes)))
        return super()._check(t, y, env, dt, shapes)

    def evaluate(self, t, y, env):
        n, t_n = self._step
        c = float(Fraction((t - t_n) / self._dt).limit_denominator(1000))  # the stage's c, exactly
        recalled = {}
        for stand_in, x, before, tau, names in self.delays:
            p = np.asarray(tau(*[env[a] for a in names]), dtype=float) / self._dt - c
            whole = np.round(p)
            p = np.where(np.abs(p - whole) < 1e-9 * np.maximum(1.0, p), whole, p)
            i = np.floor(p).astype(int)
            f = p - i
            later, earlier = self._stored(x, before, n - i), self._stored(x, before, n - i - 1)
            recalled[stand_in] = np.where(f == 0, later, (1 - f) * later + f * earlier)
        return super().evaluate(t, y, {**env, **recalled})

    def _stored(self, x, before, steps):
        """x at the step numbers `steps` (one, or one per unit), or its value before t0."""
        values = self._histories[(x, before)]
        choices = {int(m): values[m] if m >= 0 else self._before[(x, before)] for m in np.unique(steps)}
        return np.select([steps == m for m in choices], list(choices.values()))
