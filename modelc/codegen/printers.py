"""Per-target expression printers: SymPy expression -> source text of one backend.

A printer knows how one target spells a function; it refuses, at compile time, what the
target cannot do (UnsupportedFeatureError), rather than falling back to something else.
"""
from __future__ import annotations

import numpy as np
import sympy
from sympy.printing.numpy import NumPyPrinter as _SympyNumPyPrinter

from ..equations import Exprel
from ..errors import UnsupportedFeatureError


class ChoicesMixin:
    """What every target prints alike: nested two-way choices and nested binary min/max.

    A printer defines `_choose(cond, value, otherwise)` in its own spelling.
    """

    def _print_Piecewise(self, expr) -> str:
        # Nested choices from the last branch outwards; the last condition must be True.
        *branches, (last_value, last_cond) = expr.args
        if last_cond != sympy.true:
            raise UnsupportedFeatureError("a piecewise expression needs an 'otherwise' branch")
        text = self._print(last_value)
        for value, cond in reversed(branches):
            text = self._choose(self._print(cond), self._print(value), text)
        return text

    def _nested(self, func: str, args) -> str:
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{func}({text}, {self._print(arg)})"
        return text


class NumPyPrinter(ChoicesMixin, _SympyNumPyPrinter):
    """Prints expressions as NumPy code that works on (..., n) arrays; `names` maps symbols.

    `module` is the name the generated module imports NumPy as: "np", or "cp" for CuPy, whose
    array functions have NumPy's names and meanings. `scalars` names the symbols that are one
    number for every unit (scalar parameters, time): a reduction over the units of those alone
    is no array operation."""

    printmethod = "_modelc_numpy"

    def __init__(self, names: dict[str, str], module: str = "np", scalars=frozenset(), population_of=None):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.names = names
        self.np = module
        self.scalars = scalars
        self.population_of = population_of or {}  # given where `shapes` (population -> shape) is bound

    def _module_format(self, fqn: str, register: bool = True) -> str:
        # SymPy spells NumPy "numpy."; generated modules import it under self.np.
        return f"{self.np}.{fqn[len('numpy.'):]}" if fqn.startswith("numpy.") else super()._module_format(fqn, register)

    def ufunc(self, expr: sympy.Expr) -> str | None:
        """The name of the NumPy ufunc that expr is one call of (np.tanh(x) -> "tanh"), else None:
        such a call can write into the memory of the step before (out=)."""
        if not (isinstance(expr, sympy.Function) and len(expr.args) == 1):
            return None
        name = self.known_functions.get(type(expr).__name__, "").partition("numpy.")[2]
        return name if isinstance(getattr(np, name, None), np.ufunc) else None

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        try:
            return self.names[expr.name]
        except KeyError:
            raise UnsupportedFeatureError(f"no value for '{expr.name}' in generated code") from None

    def _print_Rational(self, expr) -> str:
        return repr(float(expr))

    def _print_Integer(self, expr) -> str:
        return str(int(expr))

    def _print_Float(self, expr) -> str:
        return repr(float(expr))

    def _print_Pi(self, expr) -> str:
        return f"{self.np}.pi"

    def _print_Exp1(self, expr) -> str:
        return f"{self.np}.e"

    def _print_Pow(self, expr, rational=False) -> str:
        base, exp = expr.as_base_exp()
        if exp == -1:
            return f"1.0/{self.parenthesize(base, sympy.printing.precedence.PRECEDENCE['Mul'])}"
        if exp == sympy.Rational(1, 2):
            return f"{self.np}.sqrt({self._print(base)})"
        if exp == -sympy.Rational(1, 2):
            return f"1.0/{self.np}.sqrt({self._print(base)})"
        return super()._print_Pow(expr, rational=rational)

    def _choose(self, cond: str, value: str, otherwise: str) -> str:
        return f"{self.np}.where({cond}, {value}, {otherwise})"

    def _print_Heaviside(self, expr) -> str:
        at_zero = expr.args[1] if len(expr.args) > 1 else sympy.Float(1.0)
        return f"{self.np}.heaviside({self._print(expr.args[0])}, {float(at_zero)!r})"

    def _print_And(self, expr) -> str:  # (SymPy's logical_and.reduce cannot broadcast arrays of other shapes)
        return self._nested(f"{self.np}.logical_and", expr.args)

    def _print_Or(self, expr) -> str:
        return self._nested(f"{self.np}.logical_or", expr.args)

    def _print_Min(self, expr) -> str:
        return self._nested(f"{self.np}.minimum", expr.args)

    def _print_Max(self, expr) -> str:
        return self._nested(f"{self.np}.maximum", expr.args)

    def _print_PopMean(self, expr) -> str:
        if self._same_for_every_unit(expr.args[0]):  # the mean of one number is that number
            return self._print(expr.args[0])
        return f"{self.np}.mean({self._print(expr.args[0])}, axis=-1, keepdims=True)"

    def _print_PopSum(self, expr) -> str:
        x, units = self._print(expr.args[0]), self._units(expr.args[0])
        if units is not None:  # a value given once for every unit (a number, an input's one value) counts n times
            x = f"{self.np}.broadcast_to({x}, {self.np}.shape({x})[:-1] + ({units},))"
        return f"{self.np}.sum({x}, axis=-1, keepdims=True)"

    def _units(self, expr) -> str | None:
        """The number of units of the population expr's variables belong to, as code (None
        where this printer is not told: there the argument of sum() has its unit axis)."""
        labels = [self.population_of[x.name] for x in sorted(expr.free_symbols, key=str) if x.name in self.population_of]
        return f"shapes[{labels[0]!r}][-1]" if labels and self.population_of else None

    def _same_for_every_unit(self, expr) -> bool:
        return {x.name for x in expr.free_symbols} <= self.scalars

    def _print_Exprel(self, expr) -> str:
        return f"_exprel({self._print(expr.args[0])})"

    def _print_MatVec(self, expr) -> str:
        weights, source = expr.args
        w, x = self._print(weights), self._print(source)
        if self._same_for_every_unit(source):  # W @ c: c for every source unit (a row of c's)
            x = f"{self.np}.broadcast_to({x}, {self.np}.shape({x}) + {w}.shape[1:])"
        return f"{self.np}.matmul({x}, {w}.T)"

    def _print_sign(self, expr) -> str:
        return f"{self.np}.sign({self._print(expr.args[0])})"

    # complex numbers (generate() lets only NumPy's array code compute in complex)
    def _print_Conj(self, expr) -> str:
        return f"{self.np}.conj({self._print(expr.args[0])})"

    def _print_Real(self, expr) -> str:
        return f"{self.np}.real({self._print(expr.args[0])})"

    def _print_Imag(self, expr) -> str:
        return f"{self.np}.imag({self._print(expr.args[0])})"

    def _print_Angle(self, expr) -> str:
        return f"{self.np}.angle({self._print(expr.args[0])})"

    def _print_ComplexAbs(self, expr) -> str:
        return f"{self.np}.abs({self._print(expr.args[0])})"

    def _print_Function(self, expr) -> str:
        raise UnsupportedFeatureError(f"the NumPy backend has no function '{expr.func.__name__}'")


# Helpers a generated NumPy module defines for functions NumPy does not have.
NUMPY_HELPERS = {
    Exprel: '''def _exprel(x):
    """(exp(x) - 1)/x, continuous at x = 0 (value 1) and accurate near it."""
    x = np.asarray(x)
    small = np.abs(x) < 1e-6
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 + x/2 + x*x/6, np.expm1(safe)/safe)''',
}


class ScalarPrinter(NumPyPrinter):
    """Prints expressions for one unit held in Python floats (the `math` module, no arrays).

    A single small system (a neural mass model, an oscillator) spends its time in NumPy's
    per-call overhead; on Python floats the same step costs a fraction of it.
    """

    def __init__(self, names: dict[str, str], scalars=frozenset(), population_of=None):
        super().__init__(names, module="math", scalars=scalars)

    def ufunc(self, expr: sympy.Expr) -> None:  # floats: nothing to write into
        return None

    def _print_Pow(self, expr, rational=False) -> str:
        """A power that is not a whole number goes through math.pow, which fails (and hands the
        run over to NumPy, whose answer is NaN) where Python's ** would turn complex."""
        base, exponent = expr.as_base_exp()
        if exponent.is_Integer or exponent in (sympy.Rational(1, 2), -sympy.Rational(1, 2)):
            return super()._print_Pow(expr, rational=rational)
        return f"math.pow({self._print(base)}, {self._print(exponent)})"

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if not fqn.startswith("numpy."):
            return fqn
        name = fqn[len("numpy."):]
        return "math." + (name.replace("arc", "a", 1) if name.startswith("arc") else name)  # arctan -> atan

    def _choose(self, cond: str, value: str, otherwise: str) -> str:
        return f"({value} if {cond} else {otherwise})"

    def _print_Angle(self, expr) -> str:  # floats are real: the angle is 0 or pi, as NumPy's
        return f"math.atan2(0.0, {self._print(expr.args[0])})"

    def _print_Relational(self, expr) -> str:
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_And(self, expr) -> str:
        return "(" + " and ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr) -> str:
        return "(" + " or ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr) -> str:
        return f"(not {self._print(expr.args[0])})"

    # One helper call each: the argument is printed once (nested, a repeated argument would grow
    # exponentially), and NaN goes through as NumPy lets it (so on_nan sees it).
    def _print_Heaviside(self, expr) -> str:
        at_zero = float(expr.args[1]) if len(expr.args) > 1 else 1.0
        return f"_heaviside_float({self._print(expr.args[0])}, {at_zero!r})"

    def _print_Min(self, expr) -> str:
        return self._nested("_minimum", expr.args)

    def _print_Max(self, expr) -> str:
        return self._nested("_maximum", expr.args)

    def _print_PopMean(self, expr) -> str:  # the mean over one unit is the unit
        return self._print(expr.args[0])

    _print_PopSum = _print_PopMean

    def _print_Exprel(self, expr) -> str:
        return f"_exprel_float({self._print(expr.args[0])})"

    def _print_sign(self, expr) -> str:
        return f"_sign_float({self._print(expr.args[0])})"

    def _print_Abs(self, expr) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _print_atan2(self, expr) -> str:
        return f"math.atan2({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_MatVec(self, expr) -> str:
        raise UnsupportedFeatureError("a weight matrix cannot be applied to a single unit held in floats")


SCALAR_HELPERS = {
    Exprel: '''def _exprel_float(x):
    """(exp(x) - 1)/x for one float, continuous at x = 0."""
    return 1.0 + x/2 + x*x/6 if abs(x) < 1e-6 else math.expm1(x)/x''',
    sympy.Heaviside: '''def _heaviside_float(x, at_zero):
    """heaviside(x) for one float; NaN stays NaN, as np.heaviside gives it."""
    return 1.0 if x > 0 else (0.0 if x < 0 else (at_zero if x == 0 else x))''',
    sympy.sign: '''def _sign_float(x):
    """sign(x) for one float; NaN stays NaN, as np.sign gives it."""
    return 1.0 if x > 0 else (-1.0 if x < 0 else (0.0 if x == 0 else x))''',
    sympy.Min: '''def _minimum(a, b):
    """min(a, b) that returns NaN when either is NaN, as np.minimum does."""
    return a if a <= b else (b if b < a else a + b)''',
    sympy.Max: '''def _maximum(a, b):
    """max(a, b) that returns NaN when either is NaN, as np.maximum does."""
    return a if a >= b else (b if b > a else a + b)''',
}
