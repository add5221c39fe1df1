"""An operator's equations: parsed, then edited as its inheritance chain says.

`replace: {old: new}` substitutes expressions, `remove:` drops the equation of a variable
(or sets a term to 0), `add:` appends equations. Edits work on the parsed expressions,
never on text. An edited equation's text is printed from the edited expression, so what a
generated module or the docs show is what runs; an unedited one keeps the user's text.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import sympy

from ..errors import EditTargetError, ErrorGroup, Location, ModelcError, TextOrigin
from ..spec import OperatorTemplate
from .functions import free_names
from .limits import ExpressionLimits, computing
from .parser import Equation, parse_equation, parse_expression
from .printer import equation_text, expression_text


def operator_equations(operator: OperatorTemplate) -> list[Equation]:
    """Parse an operator's equations and apply its edits in order, the oldest ancestor's first."""
    complex_names = complex_variables(operator)
    equations = parse_all(operator.equations, complex_names)
    for edits in operator.edits:
        for old, new in edits.replace:
            equations = _replace(equations, old, new, complex_names)
        for removed in edits.remove:
            equations = _remove(equations, removed, complex_names)
        equations += parse_all(edits.add, complex_names)
    return equations


def complex_variables(operator: OperatorTemplate) -> frozenset[str]:
    """The names of an operator's complex variables (declared with a complex value)."""
    return frozenset(name for name, var in operator.variables.items() if isinstance(var.default, complex))


def parse_all(texts: Iterable[str], complex_names=frozenset()) -> list[Equation]:
    """Every equation parsed; all syntax errors of the texts are raised together."""
    parsed, errors = [], []
    for text in texts:
        try:
            parsed.append(parse_equation(str(text), getattr(text, "origin", None), complex_names))
        except ModelcError as exc:
            errors.append(exc)
    raise_all(errors)
    return parsed


def raise_all(errors: list[ModelcError]) -> None:
    """Raise the one error, or an ErrorGroup of several (`modelc check` reports them all)."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(errors)


def _replace(equations: list[Equation], old_text: str, new_text: str, complex_names) -> list[Equation]:
    old, _, old_where = _edit_expression(old_text, complex_names)
    _check_found(equations, old, "replace", old_where)
    new, introduced, where = _edit_expression(new_text, complex_names)
    renames = isinstance(old, sympy.Symbol) and isinstance(new, sympy.Symbol)  # replace: {x: y} renames x's equation
    return [_edited(eq, new.name if renames and eq.target == old.name else eq.target,
                    _substituted(eq, old, new, where), introduced) for eq in equations]


def _remove(equations: list[Equation], removed: str, complex_names) -> list[Equation]:
    term, _, where = _edit_expression(removed, complex_names)
    _check_found(equations, term, "remove", where)
    if isinstance(term, sympy.Symbol) and any(eq.target == term.name for eq in equations):
        return [eq for eq in equations if eq.target != term.name]  # drop the equation of that variable
    return [_edited(eq, eq.target, _substituted(eq, term, sympy.S.Zero, where), {}) for eq in equations]


def _check_found(equations: list[Equation], old: sympy.Expr, edit: str, where: Location) -> None:
    """An edit must find what it names: in an equation, or as the variable an equation defines."""
    placeholder = sympy.Dummy()
    if isinstance(old, sympy.Symbol) and any(eq.target == old.name for eq in equations):
        return
    if not any(eq.rhs.subs(old, placeholder) != eq.rhs for eq in equations):
        raise EditTargetError(f"'{expression_text(old)}' to {edit} is not in the equations of the parent", where,
                              "the equations it would edit: " + "; ".join(eq.text for eq in equations)
                              if equations else "the parent has no equations")


def _edit_expression(text: str, complex_names) -> tuple[sympy.Expr, dict[str, Location], Location]:
    """The expression of an edit, where in the edit each of its names is written, and where the edit is."""
    origin = getattr(text, "origin", None) or TextOrigin.for_string(str(text))
    expr, spans = parse_expression(str(text), origin, complex_names)
    names = {name: origin.at(found[0].offset, found[0].length) for name, found in spans.items()}
    return expr, names, origin.at(0, len(text))


def _substituted(eq: Equation, old: sympy.Expr, new: sympy.Expr, where: Location) -> sympy.Expr:
    """eq.rhs with `old` replaced by `new`, within the limits of parsed text (limits.py). The
    powers are judged first, innermost first: a substitution may turn (2*x)^y into
    (2*x)^(10^8), which SymPy would compute exactly."""
    limits = ExpressionLimits()
    with computing(f"editing the equation of '{eq.target}'", where):
        for power in dict.fromkeys(p for p in sympy.postorder_traversal(eq.rhs) if p.is_Pow):
            limits.check_power(power.base.subs(old, new), power.exp.subs(old, new), where)
        rhs = eq.rhs.subs(old, new)
        limits.check(rhs, where)
    return rhs


def _edited(eq: Equation, target: str, rhs: sympy.Expr, introduced: dict[str, Location]) -> Equation:
    if target == eq.target and rhs == eq.rhs:
        return eq
    used = free_names(rhs)
    brought_in = {name: where for name, where in introduced.items() if name in used and name not in eq.symbol_spans}
    return dataclasses.replace(eq, target=target, rhs=rhs, text=equation_text(eq.kind, target, rhs),
                               introduced={**eq.introduced, **brought_in})
