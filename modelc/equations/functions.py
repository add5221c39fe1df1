"""The names equations may use: the closed whitelist of functions, the constants, time.

Every model quantity is a real SymPy symbol (`symbol`), but those a model declares complex
(PyRates' `variable(-0.6-0.8j)`); the few functions SymPy lacks are defined here and stay
unevaluated so that each backend prints its own safe form.
"""
from __future__ import annotations

from typing import Callable

import sympy

def symbol(name: str, is_complex: bool = False) -> sympy.Symbol:
    """The one way modelc makes symbols: every model quantity is real, or declared complex
    (conj(z), real(z) of a real z would simplify to z and z: SymPy must know which is which)."""
    return sympy.Symbol(name, complex=True) if is_complex else sympy.Symbol(name, real=True)


TIME = symbol("t")
# White noise: `xi` in a differential equation is a standard Gaussian white-noise process, one
# independent process per state and unit (x' = f + g*xi is the SDE dx = f dt + g dW). The IR
# splits it off (System.noise); it never reaches an expression a backend prints.
NOISE = symbol("xi")


# --- functions SymPy lacks ---------------------------------------------------------------

class Exprel(sympy.Function):
    """exprel(x) = (exp(x) - 1)/x, continued by its limit 1 at x = 0.

    Stays unevaluated for symbols so a backend can emit a form that is safe near 0."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sympy.S.One
        if x.is_Number:
            return (sympy.exp(x) - 1) / x
        return None

    def fdiff(self, argindex=1):
        x = self.args[0]
        return (sympy.exp(x) - self) / x  # = (x e^x - e^x + 1)/x^2

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return (sympy.exp(x) - 1) / x

    def _eval_evalf(self, prec):  # for constants like exprel(pi)
        return self.rewrite(sympy.exp)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real


class PopMean(sympy.Function):
    """mean(x): the mean of x over the population axis (backends do the reduction)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        return x if x.is_number else None  # the mean of a constant is that constant

    def _eval_is_real(self):
        return self.args[0].is_real


class PopSum(sympy.Function):
    """sum(x): the sum of x over the population axis (backends do the reduction)."""

    nargs = 1

    @property
    def is_number(self):  # sum(2) depends on the population size, unknown here
        return False

    def _eval_is_real(self):
        return self.args[0].is_real


class Delayed(sympy.Function):
    """Delayed(x, tau, history): the value x had tau time units ago (a delay differential
    equation's x(t - tau)). history says what x was before the run began: 1 its initial value
    (PyRates' past(x, tau) and x(t - tau)), 0 zero (an edge's delay: nothing was sent before t0).
    The run keeps a history of x (a ring buffer): codegen/step.py says how it is read."""

    nargs = 3

    def _eval_is_real(self):
        return self.args[0].is_real


def past(x, tau):
    """past(x, tau) and x(t - tau) in equation text: history before the run is x's initial value."""
    return Delayed(x, tau, sympy.Integer(1))


class _ComplexPart(sympy.Function):
    """A function of complex numbers that stays as it is: in the IR every symbol is real (later
    stages look symbols up by name), so SymPy must not simplify with that assumption."""

    nargs = 1


class Conj(_ComplexPart):
    """conj(z): the complex conjugate."""


class Real(_ComplexPart):
    """real(z): the real part."""


class Imag(_ComplexPart):
    """imag(z): the imaginary part."""


class Angle(_ComplexPart):
    """angle(z): the argument, in (-pi, pi]."""


class ComplexAbs(_ComplexPart):
    """abs(z) of a complex z (|z|^2 is not z^2)."""


_AS_OPAQUE = {sympy.conjugate: Conj, sympy.re: Real, sympy.im: Imag, sympy.arg: Angle}


def with_real_symbols(expr: sympy.Expr) -> sympy.Expr:
    """An expression with complex symbols (parsed knowing which variables are complex, so that
    conj(z) stayed) as one of real symbols of the same names, its complex functions opaque."""
    complex_symbols = {s: symbol(s.name) for s in expr.free_symbols if s.is_real is not True}
    opaque = {**_AS_OPAQUE, sympy.Abs: ComplexAbs} if complex_symbols else _AS_OPAQUE
    for function, stand_in in opaque.items():
        if expr.has(function):
            expr = expr.replace(function, stand_in)
    return expr.xreplace(complex_symbols) if complex_symbols else expr


def free_names(expr: sympy.Basic) -> set[str]:
    """Names of the free symbols of an expression (including 't' when time is used)."""
    return {s.name for s in expr.free_symbols}


# --- the function whitelist --------------------------------------------------------------

def _where(condition, if_true, if_false):
    return sympy.Piecewise((if_true, condition), (if_false, True))


_ONE_ARGUMENT: dict[str, Callable] = {
    "exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "abs": sympy.Abs,
    "sign": sympy.sign,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan,
    "asin": sympy.asin, "acos": sympy.acos, "atan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
    "asinh": sympy.asinh, "acosh": sympy.acosh, "atanh": sympy.atanh,
    "sigmoid": lambda x: 1 / (1 + sympy.exp(-x)),
    "heaviside": lambda x: sympy.Heaviside(x, 1),  # H(0) = 1
    "exprel": Exprel, "mean": PopMean, "sum": PopSum,
    # complex numbers (PyRates' names); of a real argument conj and real are it, imag is 0
    "conj": sympy.conjugate, "real": sympy.re, "imag": sympy.im, "angle": sympy.arg,
}
# name -> (fewest arguments, most arguments or None for any number, builder)
FUNCTIONS: dict[str, tuple[int, int | None, Callable]] = {
    **{name: (1, 1, build) for name, build in _ONE_ARGUMENT.items()},
    "atan2": (2, 2, sympy.atan2),
    "min": (2, None, sympy.Min), "max": (2, None, sympy.Max),
    "where": (3, 3, _where), "ifelse": (3, 3, _where),
    "past": (2, 2, past),
}
_ALIASES = {"absv": "abs", "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
            "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh"}
FUNCTIONS.update({alias: FUNCTIONS[name] for alias, name in _ALIASES.items()})
CONDITIONALS = {"where", "ifelse"}  # their first argument is a condition, not a number

FUNCTION_NAMES = frozenset(FUNCTIONS)
CONSTANTS = {"pi": sympy.pi, "PI": sympy.pi}  # PI: as PyRates' templates write it
RESERVED = FUNCTION_NAMES | set(CONSTANTS) | {TIME.name, NOISE.name}  # names no equation may define

COMPARISONS = {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge,
               "==": sympy.Eq, "!=": sympy.Ne}
