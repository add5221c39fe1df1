"""Limits on expressions, so that whatever the parser accepts every later stage can handle.

After parsing, SymPy and the printers of every backend walk expressions recursively, and the
generated module is Python source that must compile. So an expression is refused, located
where it crosses a limit, when

  - it nests more than MAX_DEPTH operations inside each other: SymPy and the printers spend
    about five Python frames per level, and Python allows 1000 frames (and 200 nested
    parentheses in source text);
  - a path through it strings together more than MAX_CHAIN operands: `a + b + c` is two
    nested operations to Python's compiler, which recurses on them;
  - it holds more than MAX_SIZE operations: edits substitute expressions into each other,
    and a chain of them can double the size at each step;
  - a constant part of it is not a finite real float64 (1/0, sqrt(-1), 2.0^2000);
  - a power has a constant exponent beyond MAX_EXPONENT on anything but a decimal number:
    exactly, sqrt(3)^(10^8) has 24 million digits, and SymPy would compute them.

Powers are judged before SymPy computes them (`check_power`), everything else on the
finished expression (`check`). Each SymPy node is measured once: nodes are shared.
"""
from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import mpmath
import sympy

from ..errors import EquationSyntaxError, Location
from .functions import PopSum

MAX_DEPTH = 100
MAX_CHAIN = 1000
MAX_SIZE = 100_000
MAX_EXPONENT = 1024

FLOAT64_MAX = sympy.Float(1.7976931348623157e308)
_LOG2_FLOAT64_MAX = 1024  # log2 of the largest float64, rounded up
_SPLIT_HINT = "split it into several algebraic equations"
_UNDEFINED_HINT = "is there a division by zero, log(0) or sqrt(-1)?"
# Printed as one call inside another per argument after the first: min(a, b, c) -> minimum(minimum(a, b), c).
_NESTED_CALLS = (sympy.Min, sympy.Max, sympy.Piecewise)


class _Measure(NamedTuple):
    depth: int   # operations inside each other
    chain: int   # operands strung together on the longest path from the root
    size: int    # operations in the whole tree
    value: sympy.Expr | None  # a constant's value (a SymPy Float), None where it holds a variable


class ExpressionLimits:
    """Measures expressions as they are built; raises an EquationSyntaxError located at `where`."""

    def __init__(self):
        self._measures: dict[sympy.Basic, _Measure] = {}

    def check(self, expr: sympy.Basic, where: Location | None) -> None:
        """Every part of `expr` is within the limits."""
        stack = [expr]
        while stack:  # post-order without recursion: a deep expression is what this refuses
            node = stack[-1]
            if node in self._measures:
                stack.pop()
                continue
            unmeasured = [arg for arg in node.args if arg not in self._measures]
            if unmeasured:
                stack += unmeasured
                continue
            stack.pop()
            self._measures[node] = self._measure(node, where)

    def check_power(self, base: sympy.Expr, exponent: sympy.Expr, where: Location | None) -> None:
        """`base ** exponent` may be computed: a constant result fits a float64, and no exact
        power with a huge exponent hides in it."""
        self.check(base, where)
        self.check(exponent, where)
        base_value, exponent_value = self._measures[base].value, self._measures[exponent].value
        if exponent_value is None:
            return  # a variable exponent: SymPy keeps the power as it is
        if base_value is not None and base_value != 0:
            log2 = float(exponent_value) * float(mpmath.log(abs(mpmath.mpf(base_value)), 2))
            if log2 > _LOG2_FLOAT64_MAX:
                raise _too_large(log2 * math.log10(2), where)
        if abs(exponent_value) > MAX_EXPONENT and not base.is_Float:
            raise _huge_exponent(exponent_value, constant_base=base_value is not None, where=where)

    def _measure(self, node: sympy.Basic, where: Location | None) -> _Measure:
        args = [self._measures[arg] for arg in node.args]
        levels = max(1, len(args) - 1) if isinstance(node, _NESTED_CALLS) else 1
        measure = _Measure(depth=max(a.depth for a in args) + levels if args else 0,
                           chain=max((a.chain for a in args), default=0) + len(args),
                           size=1 + sum(a.size for a in args),
                           value=_value(node, args, where) if _is_constant(node, args) else None)
        if measure.depth > MAX_DEPTH:
            raise EquationSyntaxError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                                      where, _SPLIT_HINT)
        if measure.chain > MAX_CHAIN:
            raise EquationSyntaxError(f"expression is too long (more than {MAX_CHAIN} terms in a row)",
                                      where, _SPLIT_HINT)
        if measure.size > MAX_SIZE:
            raise EquationSyntaxError(f"expression is too large (more than {MAX_SIZE} operations)", where,
                                      _SPLIT_HINT + "; an edit that puts an expression into itself doubles it")
        if node.is_Pow and measure.value is None and args[1].value is not None and abs(args[1].value) > MAX_EXPONENT:
            raise _huge_exponent(args[1].value, constant_base=False, where=where)
        return measure


def _is_constant(node: sympy.Basic, args: list[_Measure]) -> bool:
    """SymPy's is_number, from the measures of the arguments instead of a walk of the tree."""
    if not args:
        return bool(node.is_number)
    return isinstance(node, sympy.Expr) and not isinstance(node, PopSum) and all(a.value is not None for a in args)


def _value(node: sympy.Basic, args: list[_Measure], where: Location | None) -> sympy.Expr:
    """A constant's value as a SymPy Float; sums and products from their measured terms, so a
    long sum of constants is not evaluated again for each term added."""
    if node.is_Add:
        value = sympy.Add(*[a.value for a in args])
    elif node.is_Mul:
        value = sympy.Mul(*[a.value for a in args])
    else:
        value = node.evalf(15)
    if not (value.is_Number and value.is_finite):
        raise EquationSyntaxError("this part of the expression is infinite, undefined or imaginary", where,
                                  _UNDEFINED_HINT)
    if abs(value) > FLOAT64_MAX:
        raise _too_large(float(mpmath.log10(abs(mpmath.mpf(value)))), where)
    return value


def _too_large(log10: float, where: Location | None) -> EquationSyntaxError:
    if log10 < 1e15:
        exponent = math.floor(log10)
        mantissa = round(10 ** (log10 - exponent), 1)
        if mantissa >= 10:  # 9.96e399 is about 1.0e400
            mantissa, exponent = mantissa / 10, exponent + 1
        size = f"about {mantissa:.1f}e{exponent},"
    else:  # too many digits in the exponent for a mantissa to mean anything
        size = "vastly"
    return EquationSyntaxError(f"this constant is {size} more than a float64 holds (about 1.8e308)",
                               where, "a model's numbers must be finite float64 values")


def _huge_exponent(power: sympy.Expr, constant_base: bool, where: Location | None) -> EquationSyntaxError:
    if constant_base:
        return EquationSyntaxError("power too large to compute exactly", where,
                                   "write the base as a decimal number (e.g. 2.0) if you really mean it")
    return EquationSyntaxError(f"exponent {float(power):g} is too large (more than {MAX_EXPONENT})", where,
                               f"the power of an expression that holds a variable may have an exponent "
                               f"of at most {MAX_EXPONENT}")


@contextlib.contextmanager
def computing(what: str, where: Location | None):
    """An equation computed anew (an edit, or a wired constant put in) within the limits: a limit
    crossed, or SymPy refusing (comparing zoo, say), is a located error that starts with `what`."""
    try:
        yield
    except EquationSyntaxError as error:
        raise EquationSyntaxError(f"{what}: {error.message}", where, error.hint) from None
    except (TypeError, ValueError, ArithmeticError) as error:
        raise EquationSyntaxError(f"{what}: cannot compute it: {error}", where,
                                  _UNDEFINED_HINT) from None
