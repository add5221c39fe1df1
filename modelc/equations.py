"""The equations stage: equation text -> SymPy, through the lark grammar in grammar.lark.

    parse_equation("v' = -v/tau + I")  ->  Equation(kind="ode", target="v", rhs=I - v/tau, ...)

Text is never evaluated: the grammar knows only numbers, names, operators, parentheses
and calls, calls are checked against a closed whitelist, and a lark Transformer builds the
SymPy objects directly. Every error points at the offending characters via a TextOrigin.
"""
from __future__ import annotations

import keyword
import math
import operator
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple

import sympy
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, VisitError
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom

from modelc.errors import (ArityError, EquationSyntaxError, HigherOrderDerivativeError,
                           InvalidNameError, Location, ModelcError, TextOrigin,
                           UnknownFunctionError, did_you_mean)

__all__ = ["symbol", "TIME", "Span", "Equation", "parse_equation", "parse_expression",
           "FUNCTION_NAMES", "PopMean", "PopSum", "Exprel", "free_names"]


def symbol(name: str) -> sympy.Symbol:
    """The one way modelc makes symbols: every model quantity is real."""
    return sympy.Symbol(name, real=True)


TIME = symbol("t")


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
}
# name -> (fewest arguments, most arguments or None for any number, builder)
_FUNCTIONS: dict[str, tuple[int, int | None, Callable]] = {
    **{name: (1, 1, build) for name, build in _ONE_ARGUMENT.items()},
    "atan2": (2, 2, sympy.atan2),
    "min": (2, None, sympy.Min), "max": (2, None, sympy.Max),
    "where": (3, 3, _where), "ifelse": (3, 3, _where),
}
_ALIASES = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
            "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh"}
_FUNCTIONS.update({alias: _FUNCTIONS[name] for alias, name in _ALIASES.items()})
_CONDITIONALS = {"where", "ifelse"}  # their first argument is a condition, not a number

FUNCTION_NAMES = frozenset(_FUNCTIONS)
_CONSTANTS = {"pi": sympy.pi}
_RESERVED = FUNCTION_NAMES | set(_CONSTANTS) | {TIME.name}  # names no equation may define

_COMPARISONS = {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge,
                "==": sympy.Eq, "!=": sympy.Ne}
_MAX_EXACT_EXPONENT = 1024  # 9^9^9 in exact integers would never finish


# --- results -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """A stretch of an equation's text: character offset and length."""

    offset: int
    length: int


@dataclass
class Equation:
    """One parsed equation: `target' = rhs` (kind "ode") or `target = rhs` ("algebraic")."""

    kind: str
    target: str
    rhs: sympy.Expr
    text: str
    origin: TextOrigin
    target_span: Span
    symbol_spans: dict[str, list[Span]] = field(default_factory=dict)

    def location(self, name: str | None = None) -> Location:
        """Where `name` is first used on the right-hand side (the target if None or unused)."""
        spans = self.symbol_spans.get(name) if name is not None else None
        span = spans[0] if spans else self.target_span
        return self.origin.at(span.offset, span.length)


def parse_equation(text: str, origin: TextOrigin | None = None) -> Equation:
    """Parse `x' = f`, `dx/dt = f`, `d/dt * x = f` (ODEs) or `y = g` (algebraic)."""
    origin = _origin_for(text, origin)
    lhs, rhs_node = _parse(text, "equation", origin).children
    kind, target, target_span = _classify_lhs(lhs, origin)
    rhs, spans = _build(rhs_node, origin)
    return Equation(kind, target, rhs, text, origin, target_span, spans)


def parse_expression(text: str, origin: TextOrigin | None = None):
    """Parse a lone expression (a `replace:` edit) -> (SymPy expression, symbol spans)."""
    origin = _origin_for(text, origin)
    (node,) = _parse(text, "expression", origin).children
    return _build(node, origin)


def _origin_for(text, origin: TextOrigin | None) -> TextOrigin:
    if not isinstance(text, str):
        raise EquationSyntaxError(f"an equation must be text, not {type(text).__name__}",
                                  origin.at(0) if origin else None)
    return origin if origin is not None else TextOrigin.for_string(text)


# --- parsing -----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", start=["equation", "expression"],
                propagate_positions=True)


def _parse(text: str, start: str, origin: TextOrigin) -> Tree:
    what = "equation" if start == "equation" else "expression"
    if not text.strip():
        raise EquationSyntaxError(f"empty {what}", origin.at(0),
                                  "write an equation such as x' = -x/tau" if what == "equation"
                                  else "write an expression such as eta - a")
    try:
        return _parser().parse(text, start=start)
    except UnexpectedInput as error:
        raise _syntax_error(error, text, origin, what) from None


def _syntax_error(error: UnexpectedInput, text: str, origin: TextOrigin,
                  what: str) -> EquationSyntaxError:
    """Turn lark's complaint into one that names the offending text in plain words."""
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream
        char = text[position]
        if not char.isascii():
            return EquationSyntaxError(
                f"unexpected character {char!r} in {what}", origin.at(position),
                "only ASCII letters, digits, '_', operators and parentheses are allowed")
        return EquationSyntaxError(f"unexpected {char!r} in {what}", origin.at(position),
                                   _expected_hint(error, what))
    hint = _expected_hint(error, what)
    token = getattr(error, "token", None)
    if token is None or token.type in ("$END", "<EOF>"):
        return EquationSyntaxError(f"{what} ends too early", origin.at(len(text.rstrip())), hint)
    if token.type == "COMP_OP":
        hint = "comparisons cannot be chained; combine them with where(...)"
    return EquationSyntaxError(f"unexpected {token.value!r} in {what}",
                               origin.at(token.start_pos, len(token.value)), hint)


def _expected_hint(error: UnexpectedInput, what: str) -> str | None:
    """'expected an operator or ')'' from the terminals the parser would have accepted."""
    interactive = getattr(error, "interactive_parser", None)
    if interactive is None:
        return None
    accepted = interactive.accepts()
    words = []
    if accepted & {"NAME", "NUMBER"}:
        words += ["a number", "a name", "'('"]
    elif accepted & {"_STAR", "_SLASH", "_POW"}:
        words.append("an operator")
    words += [text for terminal, text in (("_RPAR", "')'"), ("_COMMA", "','"),
                                           ("_EQUAL", "'='"), ("$END", f"the end of the {what}"))
              if terminal in accepted]
    if not words:
        return None
    return "expected " + (", ".join(words[:-1]) + " or " if len(words) > 1 else "") + words[-1]


# --- the left-hand side ------------------------------------------------------------------

class _Factor(NamedTuple):
    """A name in a left-hand side like `d/dt * x`: the operator before it, and its primes."""

    op: str
    name: str
    primes: int
    offset: int

    def is_plain(self, op: str, name: str) -> bool:
        return self.op == op and self.name == name and self.primes == 0


_D_NAME = re.compile(r"d([A-Za-z_][A-Za-z0-9_]*)")               # dx in dx/dt
_DN_NAME = re.compile(r"d([1-9][0-9]*)([A-Za-z_][A-Za-z0-9_]*)")  # d2x in d2x/dt2
_HIGHER_ORDER_HINT = "write it as two first-order equations, e.g. x' = y and y' = ..."


def _classify_lhs(node, origin: TextOrigin) -> tuple[str, str, Span]:
    """(kind, target, target span) of a left-hand side; anything else is an error."""
    lhs_span = _node_span(node)
    found = _derivative_target(_product_factors(node))
    if found is None:
        raise EquationSyntaxError(
            "the left-hand side must be a variable or the derivative of one",
            origin.at(lhs_span.offset, lhs_span.length),
            "write y = ..., x' = ..., dx/dt = ... or d/dt * x = ...")
    target, order, target_span = found
    if order > 1:
        raise HigherOrderDerivativeError(
            f"derivative of order {order} of '{target}'; only first-order equations are allowed",
            origin.at(lhs_span.offset, lhs_span.length), _HIGHER_ORDER_HINT)
    _check_name(target, target_span.offset, origin)
    if target in _RESERVED:
        raise InvalidNameError(f"'{target}' cannot be defined by an equation",
                               origin.at(target_span.offset, target_span.length),
                               f"'{target}' is built in (time, a constant or a function); "
                               "choose another name")
    return ("ode" if order else "algebraic"), target, target_span


def _product_factors(node) -> list[_Factor] | None:
    """Flatten `a * b / c ...` of (primed) names into factors; None for anything else."""
    operands = []
    while isinstance(node, Tree) and node.data in ("mul", "div"):
        left, right = node.children
        operands.append(("*" if node.data == "mul" else "/", right))
        node = left
    operands.append(("*", node))
    factors = []
    for op, operand in reversed(operands):
        if not (isinstance(operand, Tree) and operand.data in ("var", "primed")):
            return None
        name = operand.children[0]
        primes = len(operand.children[1]) if operand.data == "primed" else 0
        factors.append(_Factor(op, str(name), primes, name.start_pos))
    return factors


def _derivative_target(factors: list[_Factor] | None) -> tuple[str, int, Span] | None:
    """(target, derivative order, target span) of x, x', dx/dt, d/dt * x and their stacks."""
    if not factors:
        return None
    order = 0
    while (len(factors) >= 3 and factors[0].is_plain("*", "d")
           and factors[1].is_plain("/", "dt") and factors[2].op == "*"):
        order += 1  # a leading `d/dt *`
        factors = factors[2:]
    if len(factors) == 1:
        (factor,) = factors
        return factor.name, order + factor.primes, Span(factor.offset, len(factor.name))
    if len(factors) != 2 or factors[0].primes or factors[1].primes or factors[1].op != "/":
        return None
    numerator, denominator = factors[0].name, factors[1].name
    offset = factors[0].offset
    if denominator == "dt" and (match := _D_NAME.fullmatch(numerator)):
        return match[1], order + 1, Span(offset + 1, len(match[1]))
    match = _DN_NAME.fullmatch(numerator)
    if match and denominator == "dt" + match[1]:
        return match[2], order + int(match[1]), Span(offset + 1 + len(match[1]), len(match[2]))
    return None


def _node_span(node) -> Span:
    if isinstance(node, Token):
        return Span(node.start_pos, len(node))
    return _meta_span(node.meta)


def _meta_span(meta) -> Span:
    return Span(meta.start_pos, meta.end_pos - meta.start_pos)


def _check_name(name: str, offset: int, origin: TextOrigin) -> None:
    where = origin.at(offset, len(name))
    if name.startswith("__"):
        raise InvalidNameError(f"name '{name}' starts with two underscores", where,
                               "names starting with '__' are reserved; rename it")
    if keyword.iskeyword(name):
        raise InvalidNameError(f"'{name}' is a Python keyword and cannot be a name", where,
                               f"rename it, e.g. '{name}_'")


# --- the right-hand side -----------------------------------------------------------------

def _build(node, origin: TextOrigin) -> tuple[sympy.Expr, dict[str, list[Span]]]:
    """SymPy expression and variable spans of an expression node."""
    builder = _ExpressionBuilder(origin)
    span = _node_span(node)
    try:
        expr = builder.transform(Tree("expression", [node]))
        undefined = expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)
    except VisitError as error:  # lark wraps what our callbacks raise
        if isinstance(error.orig_exc, RecursionError):
            raise _too_deep(origin, span) from None
        if isinstance(error.orig_exc, ModelcError):
            raise error.orig_exc from None
        where = span if error.obj.meta.empty else _node_span(error.obj)
        raise EquationSyntaxError(  # e.g. SymPy refusing to compare atanh(2) < 0
            f"cannot compute this part of the expression: {error.orig_exc}",
            origin.at(where.offset, where.length)) from None
    except RecursionError:
        raise _too_deep(origin, span) from None
    if undefined:
        raise EquationSyntaxError("the expression is infinite, undefined or imaginary",
                                  origin.at(span.offset, span.length),
                                  "is there a division by zero, log(0) or sqrt(-1)?")
    return expr, builder.spans


def _too_deep(origin: TextOrigin, span: Span) -> EquationSyntaxError:
    return EquationSyntaxError("expression is nested too deeply", origin.at(span.offset),
                               "split it into several algebraic equations")


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
    def build(self, children):
        left, right = map(_as_number, children)
        return op(left, right)
    return build


class _ExpressionBuilder(Transformer):
    """Builds SymPy from a parse tree and records where each variable is used."""

    def __init__(self, origin: TextOrigin):
        super().__init__()
        self.origin = origin
        self.spans: dict[str, list[Span]] = {}

    def _at(self, token: Token, length: int | None = None) -> Location:
        return self.origin.at(token.start_pos, len(token) if length is None else length)

    def expression(self, children):
        return _as_number(children[0])

    def NUMBER(self, token: Token):
        text = str(token)
        try:
            if text.isdigit():
                return sympy.Integer(int(text))
            value = float(text)
        except ValueError:  # more digits than Python converts
            value = math.inf
        if not math.isfinite(value):
            raise EquationSyntaxError(f"number {text[:20]} is too large", self._at(token))
        return sympy.Float(value)

    def var(self, children):
        (name,) = children
        _check_name(name, name.start_pos, self.origin)
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in FUNCTION_NAMES:
            raise EquationSyntaxError(f"'{name}' is a function, not a variable", self._at(name),
                                      f"call it with arguments, e.g. {name}(x)")
        self.spans.setdefault(str(name), []).append(Span(name.start_pos, len(name)))
        return symbol(str(name))

    def primed(self, children):
        name, primes = children
        raise EquationSyntaxError(
            f"the derivative {name}{primes} can only appear on the left-hand side",
            self._at(name, len(name) + len(primes)),
            "the right-hand side uses the variable itself, as in x' = -x")

    def neg(self, children):
        return -_as_number(children[0])

    def pos(self, children):
        return _as_number(children[0])

    add = _arithmetic(operator.add)
    sub = _arithmetic(operator.sub)
    mul = _arithmetic(operator.mul)
    div = _arithmetic(operator.truediv)

    def _real(self, value, meta):
        """Reject constants like sqrt(-1) at once: SymPy can hang comparing complex constants."""
        if value.is_number and value.evalf(15).is_real is False:
            span = _meta_span(meta)
            raise EquationSyntaxError(
                "this part of the expression is infinite, undefined or imaginary",
                self.origin.at(span.offset, span.length),
                "is there a division by zero, log(0) or sqrt(-1)?")
        return value

    @v_args(meta=True)
    def pow(self, meta, children):
        base, exponent = map(_as_number, children)
        if (base.is_Rational and exponent.is_Integer and abs(base) != 1 and base != 0
                and abs(exponent) > _MAX_EXACT_EXPONENT):
            span = _meta_span(meta)
            raise EquationSyntaxError(
                "power too large to compute exactly", self.origin.at(span.offset, span.length),
                "write the base as a decimal number (e.g. 2.0) if you really mean it")
        return self._real(base ** exponent, meta)

    def compare(self, children):
        left, op, right = children
        return _COMPARISONS[op](_as_number(left), _as_number(right))

    @v_args(meta=True)
    def call(self, meta, children):
        name, *args = children
        if name not in _FUNCTIONS:
            hint = did_you_mean(name, FUNCTION_NAMES)
            if name in _CONSTANTS:
                hint = f"'{name}' is a constant; write it without parentheses"
            raise UnknownFunctionError(f"unknown function '{name}'", self._at(name),
                                       hint or "known functions: " + ", ".join(sorted(_FUNCTIONS)))
        fewest, most, build = _FUNCTIONS[name]
        if len(args) < fewest or (most is not None and len(args) > most):
            raise ArityError(f"{name}() takes {_count_words(fewest, most)} "
                             f"but {len(args)} {'was' if len(args) == 1 else 'were'} given",
                             self._at(name))
        if name in _CONDITIONALS:
            value = build(_as_condition(args[0]), *map(_as_number, args[1:]))
        else:
            value = build(*map(_as_number, args))
        return self._real(value, meta)


def _count_words(fewest: int, most: int | None) -> str:
    noun = "argument" if fewest == 1 else "arguments"
    return f"{fewest} {noun}" if most == fewest else f"at least {fewest} {noun}"
