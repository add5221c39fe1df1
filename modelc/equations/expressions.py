"""Parse trees of expressions -> SymPy, recording where each variable is used.

A lark Transformer builds the SymPy objects directly from the tree: numbers, names,
operators and calls of whitelisted functions, nothing else. Errors point at the offending
characters through the TextOrigin of the text.
"""
from __future__ import annotations

import keyword
import operator
from dataclasses import dataclass
from typing import Callable

import sympy
from lark import Token, Tree, v_args
from lark.exceptions import VisitError
from lark.visitors import Transformer_NonRecursive
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom

from ..errors import (ArityError, EquationSyntaxError, InvalidNameError, Location, ModelcError, TextOrigin,
                      UnknownFunctionError, did_you_mean)
from .functions import COMPARISONS, CONDITIONALS, CONSTANTS, FUNCTION_NAMES, FUNCTIONS, TIME, past, symbol
from .limits import FLOAT64_MAX, ExpressionLimits


@dataclass(frozen=True)
class Span:
    """A stretch of an equation's text: character offset and length."""

    offset: int
    length: int


def node_span(node) -> Span:
    if isinstance(node, Token):
        return Span(node.start_pos, len(node))
    return meta_span(node.meta)


def meta_span(meta) -> Span:
    return Span(meta.start_pos, meta.end_pos - meta.start_pos)


def check_name(name: str, offset: int, origin: TextOrigin) -> None:
    """Names that Python would not take as identifiers are refused where they stand."""
    where = origin.at(offset, len(name))
    if name.startswith("__"):
        raise InvalidNameError(f"name '{name}' starts with two underscores", where,
                               "names starting with '__' are reserved; rename it")
    if keyword.iskeyword(name):
        raise InvalidNameError(f"'{name}' is a Python keyword and cannot be a name", where,
                               f"rename it, e.g. '{name}_'")


def build_expression(node, origin: TextOrigin, complex_names=frozenset()) -> tuple[sympy.Expr, dict[str, list[Span]]]:
    """SymPy expression and variable spans of an expression node (complex_names: the names of
    complex variables; every other name is real)."""
    builder = _ExpressionBuilder(origin, complex_names)
    span = node_span(node)
    try:
        expr = builder.transform(Tree("expression", [node]))
    except VisitError as error:  # lark wraps what our callbacks raise
        if isinstance(error.orig_exc, ModelcError):
            raise error.orig_exc from None
        where = span if error.obj.meta.empty else node_span(error.obj)
        raise EquationSyntaxError(  # e.g. SymPy refusing to compare atanh(2) < 0
            f"cannot compute this part of the expression: {error.orig_exc}",
            origin.at(where.offset, where.length)) from None
    builder.limits.check(expr, origin.at(span.offset, span.length))  # a comparison used as a number
    return expr, builder.spans


def _as_number(value):
    """Comparisons used as numbers are 0 or 1."""
    if isinstance(value, (Relational, BooleanAtom)):
        return sympy.Piecewise((1, value), (0, True))
    return value


def _as_condition(value):
    """A number used as a condition is true where it is not 0."""
    if isinstance(value, (Relational, BooleanAtom)):
        return value
    return sympy.Ne(value, 0)


def _arithmetic(op: Callable):
    @v_args(meta=True)
    def build(self, meta, children):
        left, right = map(_as_number, children)
        return self._checked(op(left, right), meta)
    return build


class _ExpressionBuilder(Transformer_NonRecursive):
    """Builds SymPy from a parse tree and records where each variable is used.

    Not recursive: a long sum is a deep parse tree. What the tree builds is checked against
    the limits (limits.py) node by node, so an error points at the part that crosses one."""

    def __init__(self, origin: TextOrigin, complex_names=frozenset()):
        super().__init__()
        self.origin = origin
        self.complex_names = complex_names
        self.spans: dict[str, list[Span]] = {}
        self.limits = ExpressionLimits()

    def _at(self, token: Token, length: int | None = None) -> Location:
        return self.origin.at(token.start_pos, len(token) if length is None else length)

    def _where(self, meta) -> Location:
        span = meta_span(meta)
        return self.origin.at(span.offset, span.length)

    def _checked(self, value, meta):
        self.limits.check(value, self._where(meta))
        return value

    def expression(self, children):
        return _as_number(children[0])

    def NUMBER(self, token: Token):
        text = str(token)
        try:
            value = sympy.Integer(int(text)) if text.isdigit() else sympy.Float(float(text))
        except ValueError:  # more digits than Python converts
            value = sympy.oo
        if not value.is_finite or abs(value) > FLOAT64_MAX:
            raise EquationSyntaxError(f"number {text[:20]} is too large", self._at(token),
                                      "a model's numbers must be finite float64 values (at most about 1.8e308)")
        return value

    def var(self, children):
        (name,) = children
        check_name(name, name.start_pos, self.origin)
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTION_NAMES:
            raise EquationSyntaxError(f"'{name}' is a function, not a variable", self._at(name),
                                      f"call it with arguments, e.g. {name}(x)")
        self.spans.setdefault(str(name), []).append(Span(name.start_pos, len(name)))
        return symbol(str(name), str(name) in self.complex_names)

    def primed(self, children):
        name, primes = children
        raise EquationSyntaxError(
            f"the derivative {name}{primes} can only appear on the left-hand side",
            self._at(name, len(name) + len(primes)),
            "the right-hand side uses the variable itself, as in x' = -x")

    @v_args(meta=True)
    def neg(self, meta, children):
        return self._checked(-_as_number(children[0]), meta)

    def pos(self, children):
        return _as_number(children[0])

    add = _arithmetic(operator.add)
    sub = _arithmetic(operator.sub)
    mul = _arithmetic(operator.mul)
    div = _arithmetic(operator.truediv)

    @v_args(meta=True)
    def pow(self, meta, children):
        base, exponent = map(_as_number, children)
        self.limits.check_power(base, exponent, self._where(meta))  # before SymPy computes it
        return self._checked(base ** exponent, meta)

    @v_args(meta=True)
    def compare(self, meta, children):
        left, op, right = children
        return self._checked(COMPARISONS[op](_as_number(left), _as_number(right)), meta)

    @v_args(meta=True)
    def call(self, meta, children):
        name, *args = children
        if name not in FUNCTIONS and name not in CONSTANTS and len(args) == 1 and _delay_of(args[0]) is not None:
            tau = _delay_of(args[0])  # x(t - tau), PyRates' spelling (x(t) is x)
            return self._checked(past(self.var([name]), tau) if tau != 0 else self.var([name]), meta)
        if name not in FUNCTIONS:
            hint = did_you_mean(name, FUNCTION_NAMES)
            if name in CONSTANTS:
                hint = f"'{name}' is a constant; write it without parentheses"
            raise UnknownFunctionError(f"unknown function '{name}'", self._at(name),
                                       hint or "known functions: " + ", ".join(sorted(FUNCTIONS)))
        fewest, most, build = FUNCTIONS[name]
        if len(args) < fewest or (most is not None and len(args) > most):
            raise ArityError(f"{name}() takes {_count_words(fewest, most)} "
                             f"but {len(args)} {'was' if len(args) == 1 else 'were'} given",
                             self._at(name))
        if name in CONDITIONALS:
            value = build(_as_condition(args[0]), *map(_as_number, args[1:]))
        else:
            value = build(*map(_as_number, args))
        return self._checked(value, meta)


def _delay_of(argument) -> sympy.Expr | None:
    """tau of an argument t - tau (tau without t), else None."""
    if not isinstance(argument, sympy.Expr) or TIME not in argument.free_symbols:
        return None
    tau = TIME - argument
    return None if TIME in tau.free_symbols else tau


def _count_words(fewest: int, most: int | None) -> str:
    noun = "argument" if fewest == 1 else "arguments"
    return f"{fewest} {noun}" if most == fewest else f"at least {fewest} {noun}"
