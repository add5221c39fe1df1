"""Integration schemes as data: an explicit Runge-Kutta method is its Butcher tableau.

Adding a scheme is adding an entry here; one generic template renders any tableau.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F

from ..errors import UnknownMethodError, did_you_mean


@dataclass(frozen=True)
class ButcherTableau:
    """y_{n+1} = y_n + dt * sum_i b_i k_i,  k_i = f(t_n + c_i dt, y_n + dt * sum_j a_ij k_j)."""

    name: str
    order: int
    doc: str
    a: tuple[tuple[F, ...], ...]
    b: tuple[F, ...]
    c: tuple[F, ...]

    @property
    def stages(self) -> int:
        return len(self.b)


SCHEMES = {
    "euler": ButcherTableau(
        "euler", 1, "Forward Euler: one evaluation per step, first order.",
        a=((),), b=(F(1),), c=(F(0),)),
    "heun": ButcherTableau(
        "heun", 2, "Heun's method (explicit trapezoidal rule): two evaluations per step, second order.",
        a=((), (F(1),)), b=(F(1, 2), F(1, 2)), c=(F(0), F(1))),
    "midpoint": ButcherTableau(
        "midpoint", 2, "Explicit midpoint rule: two evaluations per step, second order.",
        a=((), (F(1, 2),)), b=(F(0), F(1)), c=(F(0), F(1, 2))),
    "rk4": ButcherTableau(
        "rk4", 4, "The classic fourth-order Runge-Kutta method: four evaluations per step.",
        a=((), (F(1, 2),), (F(0), F(1, 2)), (F(0), F(0), F(1))),
        b=(F(1, 6), F(1, 3), F(1, 3), F(1, 6)), c=(F(0), F(1, 2), F(1, 2), F(1))),
}


def get_scheme(name: str) -> ButcherTableau:
    try:
        return SCHEMES[name]
    except KeyError:
        raise UnknownMethodError(f"unknown integration method '{name}'", None,
                                 did_you_mean(name, SCHEMES) or f"choose one of {', '.join(SCHEMES)}") from None
