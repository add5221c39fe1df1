"""Equation text -> Equation, through the lark grammar in modelc/grammar.lark.

    parse_equation("v' = -v/tau + I")  ->  Equation(kind="ode", target="v", rhs=I - v/tau, ...)

The left-hand side is parsed as an ordinary expression and classified here (`x'`, `dx/dt`,
`d/dt * x` or a plain name); the right-hand side becomes SymPy in expressions.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import sympy
from lark import Lark, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput

from ..errors import EquationSyntaxError, HigherOrderDerivativeError, InvalidNameError, Location, TextOrigin
from .expressions import Span, build_expression, check_name, node_span
from .functions import RESERVED


@dataclass
class Equation:
    """One parsed equation: `target' = rhs` (kind "ode") or `target = rhs` ("algebraic").

    `text` is the equation as the model file writes it; after an inheritance edit it is
    printed from the edited expression (see edits.py). Spans are offsets into the text the
    user wrote (`origin`); names an edit brought in are located in the edit (`introduced`).
    """

    kind: str
    target: str
    rhs: sympy.Expr
    text: str
    origin: TextOrigin
    target_span: Span
    symbol_spans: dict[str, list[Span]] = field(default_factory=dict)
    introduced: dict[str, Location] = field(default_factory=dict)

    def names(self) -> list[str]:
        """The names the equation reads: those the user wrote, then those edits brought in."""
        return list(self.symbol_spans) + [name for name in self.introduced if name not in self.symbol_spans]

    def location(self, name: str | None = None) -> Location:
        """Where `name` is first used on the right-hand side (the target if None or unused)."""
        if name in self.introduced and name not in self.symbol_spans:
            return self.introduced[name]
        spans = self.symbol_spans.get(name) if name is not None else None
        span = spans[0] if spans else self.target_span
        return self.origin.at(span.offset, span.length)


def parse_equation(text: str, origin: TextOrigin | None = None, complex_names=frozenset()) -> Equation:
    """Parse `x' = f`, `dx/dt = f`, `d/dt * x = f` (ODEs) or `y = g` (algebraic)."""
    origin = _origin_for(text, origin)
    lhs, rhs_node = _parse(text, "equation", origin).children
    kind, target, target_span = _classify_lhs(lhs, origin)
    rhs, spans = build_expression(rhs_node, origin, complex_names)
    return Equation(kind, target, rhs, text, origin, target_span, spans)


def parse_expression(text: str, origin: TextOrigin | None = None, complex_names=frozenset()):
    """Parse a lone expression (a `replace:` edit) -> (SymPy expression, symbol spans)."""
    origin = _origin_for(text, origin)
    (node,) = _parse(text, "expression", origin).children
    return build_expression(node, origin, complex_names)


def _origin_for(text, origin: TextOrigin | None) -> TextOrigin:
    if not isinstance(text, str):
        raise EquationSyntaxError(f"an equation must be text, not {type(text).__name__}",
                                  origin.at(0) if origin else None)
    return origin if origin is not None else TextOrigin.for_string(text)


# --- parsing -----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent.parent / "grammar.lark").read_text(encoding="utf-8")
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
    lhs_span = node_span(node)
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
    check_name(target, target_span.offset, origin)
    if target in RESERVED:
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
