"""Integration schemes: each one says how the stages of one step combine into the update.

A Scheme is anything with a name, an order, a docstring, a stage count and a `steps(step)`
method that describes one step to a step-program builder (step.py): for each stage, the time
offset and the state values it starts from, then the update. It never prints code; every
backend translates the statements the builder makes. The explicit Runge-Kutta family is the
first kind: one class, any Butcher tableau. The stochastic Runge-Kutta family (white noise,
`xi` in an equation) is the second: the same tableau plus one for the noise, so Euler-Maruyama
and stochastic Heun are data too. An exponential scheme would be another class with its own
`steps`, not another code path in the backends.

Noise, precisely: x' = f + g*xi is the SDE dx = f dt + g dW, one standard Wiener process W per
state and unit. Each step draws one increment dW = sqrt(dt) * z per state and unit (z standard
normal). With `euler` the model integrates by Euler-Maruyama, x_new = x + f(x) dt + g(x) dW,
which converges to the Ito solution; with `heun` by stochastic Heun, which converges to the
Stratonovich solution. When g reads no state (additive noise) the two calculi are the same
equation; when it does (multiplicative noise) they differ by the drift 1/2 g dg/dx. Every other
method refuses a model with noise (NoiseMethodError, MC142).

Light on purpose (no SymPy): the runtime checks a method name without importing the compiler.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F
from typing import Protocol

from ..errors import UnknownMethodError, UnsupportedFeatureError, did_you_mean


class StepBuilder(Protocol):
    """What a scheme may say about one step (step.py implements it)."""

    def stage(self, k: int, time: F, start: tuple[tuple[int, F], ...], noise: tuple[tuple[int, F], ...] = ()) -> None:
        """Stage k at t + time*dt, from the states x + dt * sum(a * (rate of stage j) for j, a in start)
        + sum(a * g_j * dW for j, a in noise): g_j the diffusion coefficient in stage j, dW the
        step's Wiener increment."""

    def update(self, weights: tuple[tuple[int, F], ...], noise: tuple[tuple[int, F], ...] = ()) -> None:
        """x_new = x + dt * sum(b * (rate of stage j) for j, b in weights) + sum(b * g_j * dW for j, b in noise)."""


@dataclass(frozen=True)
class ExplicitRungeKutta:
    """y_{n+1} = y_n + dt * sum_i b_i k_i,  k_i = f(t_n + c_i dt, y_n + dt * sum_j a_ij k_j).

    Row i of `a` lists a_ij for j < i (missing entries are 0; a row may be all zeros).
    """

    name: str
    order: int
    doc: str
    a: tuple[tuple[F, ...], ...]
    b: tuple[F, ...]
    c: tuple[F, ...]

    def __post_init__(self):
        if not (len(self.a) == len(self.b) == len(self.c)) or not self.b:
            raise UnsupportedFeatureError(f"the tableau of '{self.name}' needs as many rows in a as entries "
                                          f"in b and c (got {len(self.a)}, {len(self.b)}, {len(self.c)})")
        if any(len(row) > i for i, row in enumerate(self.a)):
            raise UnsupportedFeatureError(f"the tableau of '{self.name}' is not explicit: row i of a may "
                                          "only have entries for the stages before i")

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def folds_dt(self) -> bool:
        """One stage from the step's own state: dt folds into the coefficients (x_new = a*x + ...)."""
        return self.stages == 1 and self.c[0] == 0

    def steps(self, step: StepBuilder) -> None:
        for k in range(self.stages):
            step.stage(k, self.c[k], _nonzero(self.a[k]))
        step.update(_nonzero(self.b))


@dataclass(frozen=True)
class StochasticRungeKutta(ExplicitRungeKutta):
    """An explicit Runge-Kutta scheme for dx = f dt + g dW, one Wiener increment dW per step:

        stage i starts from  x + dt * sum_j a_ij f_j + dW * sum_j noise_a_ij g_j
        x_new =              x + dt * sum_j b_j f_j  + dW * sum_j noise_b_j g_j

    with f_j, g_j the drift and the diffusion coefficient in stage j. The docstring of each
    scheme says which solution it converges to when g reads the states (Ito or Stratonovich).
    """

    noise_a: tuple[tuple[F, ...], ...]
    noise_b: tuple[F, ...]

    def __post_init__(self):
        super().__post_init__()
        if len(self.noise_a) != self.stages or len(self.noise_b) != self.stages or \
                any(len(row) > i for i, row in enumerate(self.noise_a)):
            raise UnsupportedFeatureError(f"the noise tableau of '{self.name}' needs one explicit row and one "
                                          "weight per stage")

    def steps(self, step: StepBuilder) -> None:
        for k in range(self.stages):
            step.stage(k, self.c[k], _nonzero(self.a[k]), _nonzero(self.noise_a[k]))
        step.update(_nonzero(self.b), _nonzero(self.noise_b))


def _nonzero(row: tuple[F, ...]) -> tuple[tuple[int, F], ...]:
    return tuple((j, a) for j, a in enumerate(row) if a != 0)


SCHEMES = {
    "euler": ExplicitRungeKutta(
        "euler", 1, "Forward Euler: one evaluation per step, first order.",
        a=((),), b=(F(1),), c=(F(0),)),
    "heun": ExplicitRungeKutta(
        "heun", 2, "Heun's method (explicit trapezoidal rule): two evaluations per step, second order.",
        a=((), (F(1),)), b=(F(1, 2), F(1, 2)), c=(F(0), F(1))),
    "midpoint": ExplicitRungeKutta(
        "midpoint", 2, "Explicit midpoint rule: two evaluations per step, second order.",
        a=((), (F(1, 2),)), b=(F(0), F(1)), c=(F(0), F(1, 2))),
    "rk4": ExplicitRungeKutta(
        "rk4", 4, "The classic fourth-order Runge-Kutta method: four evaluations per step.",
        a=((), (F(1, 2),), (F(0), F(1, 2)), (F(0), F(0), F(1))),
        b=(F(1, 6), F(1, 3), F(1, 3), F(1, 6)), c=(F(0), F(1, 2), F(1, 2), F(1))),
}

# The schemes a model with noise integrates by, under the names of their drift's scheme.
STOCHASTIC = {
    "euler": StochasticRungeKutta(
        "euler", 1, "Euler-Maruyama: forward Euler plus g(x) dW; converges to the Ito solution, strong order "
        "1/2 (1 with additive noise), weak order 1.",
        a=((),), b=(F(1),), c=(F(0),), noise_a=((),), noise_b=(F(1),)),
    "heun": StochasticRungeKutta(
        "heun", 2, "Stochastic Heun: predictor x + f dt + g dW, then the mean of f and of g at x and at the "
        "predictor; converges to the Stratonovich solution, strong order 1 with additive noise or when each "
        "state's g reads only that state, weak order 1.",
        a=((), (F(1),)), b=(F(1, 2), F(1, 2)), c=(F(0), F(1)),
        noise_a=((), (F(1),)), noise_b=(F(1, 2), F(1, 2))),
}


def stochastic(scheme: ExplicitRungeKutta) -> "StochasticRungeKutta | None":
    """The scheme a model with noise integrates by instead of `scheme`, or None where there is none."""
    if isinstance(scheme, StochasticRungeKutta):
        return scheme
    return STOCHASTIC.get(scheme.name) if SCHEMES.get(scheme.name) == scheme else None


def get_scheme(name: "str | ExplicitRungeKutta") -> ExplicitRungeKutta:
    """A scheme by its name, or the scheme itself (a tableau of one's own, e.g. in a test)."""
    if isinstance(name, ExplicitRungeKutta):
        return name
    try:
        return SCHEMES[name]
    except KeyError:
        raise UnknownMethodError(f"unknown integration method '{name}'", None,
                                 did_you_mean(name, SCHEMES) or f"choose one of {', '.join(SCHEMES)}") from None
