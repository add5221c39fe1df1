"""Integration schemes: each one says how the stages of one step combine into the update.

A Scheme is anything with a name, an order, a docstring, a stage count and a `steps(step)`
method that describes one step to a step-program builder (step.py): for each stage, the time
offset and the state values it starts from, then the update. It never prints code; every
backend translates the statements the builder makes. The explicit Runge-Kutta family is the
first kind: one class, any Butcher tableau. A stochastic or exponential scheme would be another
class with its own `steps`, not another code path in the backends.

Light on purpose (no SymPy): the runtime checks a method name without importing the compiler.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F
from typing import Protocol

from ..errors import UnknownMethodError, UnsupportedFeatureError, did_you_mean


class StepBuilder(Protocol):
    """What a scheme may say about one step (step.py implements it)."""

    def stage(self, k: int, time: F, start: tuple[tuple[int, F], ...]) -> None:
        """Stage k at t + time*dt, from the states x + dt * sum(a * (rate of stage j) for j, a in start)."""

    def update(self, weights: tuple[tuple[int, F], ...]) -> None:
        """x_new = x + dt * sum(b * (rate of stage j) for j, b in weights)."""


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
            step.stage(k, self.c[k], tuple((j, a) for j, a in enumerate(self.a[k]) if a != 0))
        step.update(tuple((j, b) for j, b in enumerate(self.b) if b != 0))


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


def get_scheme(name: "str | ExplicitRungeKutta") -> ExplicitRungeKutta:
    """A scheme by its name, or the scheme itself (a tableau of one's own, e.g. in a test)."""
    if isinstance(name, ExplicitRungeKutta):
        return name
    try:
        return SCHEMES[name]
    except KeyError:
        raise UnknownMethodError(f"unknown integration method '{name}'", None,
                                 did_you_mean(name, SCHEMES) or f"choose one of {', '.join(SCHEMES)}") from None
