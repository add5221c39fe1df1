"""SymPy -> equation text in the model-file syntax (what an edited equation shows in docs).

    equation_text("ode", "v", (eta - a - v)/tau)  ->  "v' = (-a + eta - v)/tau"

The text parses back to the same expression: `^` for powers, the whitelist's own function
names (abs, min, heaviside, exprel, mean, ...), `where(c, a, b)` for piecewise values.
"""
from __future__ import annotations

import sympy
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from .functions import Exprel, PopMean, PopSum

_RENAMED = {sympy.Abs: "abs", sympy.Min: "min", sympy.Max: "max", Exprel: "exprel", PopMean: "mean",
            PopSum: "sum", sympy.conjugate: "conj", sympy.re: "real", sympy.im: "imag", sympy.arg: "angle"}


class _ModelSyntaxPrinter(StrPrinter):
    def _print_Float(self, expr) -> str:
        return repr(float(expr))  # the shortest text that reads back as the same number

    def _print_Pow(self, expr, rational=False) -> str:
        if expr.exp in (sympy.S.Half, -sympy.S.Half, sympy.S.NegativeOne):
            return super()._print_Pow(expr, rational)  # sqrt(x), 1/sqrt(x), 1/x
        level = precedence(expr)
        # a power as the base needs parentheses: x^y^z reads as x^(y^z)
        return f"{self.parenthesize(expr.base, level, strict=False)}^{self.parenthesize(expr.exp, level, strict=True)}"

    def _print_Exp1(self, expr) -> str:
        return "exp(1)"

    def _print_Function(self, expr) -> str:
        name = _RENAMED.get(type(expr))
        if name is None:
            return super()._print_Function(expr)
        return f"{name}({self.stringify(expr.args, ', ')})"

    _print_Abs = _print_Min = _print_Max = _print_conjugate = _print_re = _print_im = _print_arg = _print_Function

    def _print_Delayed(self, expr) -> str:
        return f"past({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Heaviside(self, expr) -> str:
        return f"heaviside({self._print(expr.args[0])})"  # the grammar's heaviside is H(0) = 1

    def _print_Relational(self, expr) -> str:
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _print_Piecewise(self, expr) -> str:
        # Piecewise values come from where(c, a, b): the last branch holds for every other case.
        *branches, (text, _) = expr.args
        text = self._print(text)
        for value, condition in reversed(branches):
            text = f"where({self._print(condition)}, {self._print(value)}, {text})"
        return text


def expression_text(expr: sympy.Expr) -> str:
    return _ModelSyntaxPrinter().doprint(expr)


def equation_text(kind: str, target: str, rhs: sympy.Expr) -> str:
    """`target' = rhs` (kind "ode") or `target = rhs` in the model-file syntax."""
    prime = "'" if kind == "ode" else ""
    return f"{target}{prime} = {expression_text(rhs)}"
