"""Reading the fields of a template body: names, values, variables, overrides, edges, edits.

Each function takes the marked YAML of one field and returns checked values, or raises an
error located at the offending key or value.
"""
from __future__ import annotations

import cmath
import math
import re
from typing import Any

from ..errors import DelayError, InvalidNameError, Location, TemplateFormatError, did_you_mean
from .marked_yaml import MarkedDict, MarkedStr, excerpt, marked_text
from .templates import EdgeSpec, EdgeTemplate, EquationEdits, OperatorTemplate, VariableSpec

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)"
_UNSIGNED = r"(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
# PyRates' complex values: -0.6-0.8j, 1j; `complex` alone declares a complex value 0
_COMPLEX = rf"[-+]?{_UNSIGNED}\s*[-+]\s*{_UNSIGNED}[jJ]|[-+]?{_UNSIGNED}[jJ]"
_VALUE = rf"{_COMPLEX}|{_NUMBER}|complex"
_DECLARATION = re.compile(rf"\s*(output|input|variable)\s*(?:\(\s*({_VALUE})?\s*\))?\s*\Z")
_NUMBER_TEXT = re.compile(rf"\s*(?:{_COMPLEX}|{_NUMBER})\s*\Z")
_EQUATION_EXAMPLE = "write an equation such as x' = -x/tau, or a list of them"


def check_name(name: str, location: Location | None, what: str = "variable") -> str:
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise InvalidNameError(f"{excerpt(name)} is not a valid {what} name", location,
                               "names start with a letter or '_' and hold letters, digits and '_'")
    if name.startswith("__"):
        raise InvalidNameError(f"{what} name '{name}' may not start with '__'", location)
    return name


def check_keys(body: MarkedDict, allowed: set[str], what: str) -> None:
    for key in body:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(sorted(allowed))}"
            raise TemplateFormatError(f"unknown key '{key}' in {what}", body.where(key), hint)


def text_field(body: MarkedDict, key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise TemplateFormatError(f"'{key}:' must be text", body.where_value(key))
    return str(value)


def _note(body: MarkedDict, key: str) -> str | None:
    """A variable's unit or description: text, or a number as written (unit: 1)."""
    value = body.get(key)
    if isinstance(value, (list, dict)):  # never str() one: YAML aliases can make it billions of items
        raise TemplateFormatError(f"'{key}:' must be text", body.where_value(key))
    return None if value is None else str(value)


def string_list(raw: Any, location: Location, what: str) -> list[MarkedStr]:
    """A string or a list of strings (equations, `add:`, `remove:`)."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, MarkedStr) for i in items):
        raise TemplateFormatError(f"'{what}' must be a string or a list of strings", location,
                                  "quote equations that YAML could read as something else")
    return list(items)


def equation_texts(body: MarkedDict, name: str) -> list[MarkedStr]:
    """The texts of `equations:` given as a string or a list (not as edits)."""
    raw, where = body["equations"], body.where_value("equations")
    if raw is None:  # `equations:` with nothing after it, or `equations: null`
        raise TemplateFormatError(f"'equations:' of operator '{name}' is empty", where, _EQUATION_EXAMPLE)
    return string_list(raw, where, "equations")


def parse_value(raw: Any, location: Location | None, name: str) -> tuple[str, float | complex]:
    """A variable declaration: a number, or output(x0) / input(x0) / variable(x0); a complex
    number (-0.6-0.8j) or `complex` (0j) makes the variable complex."""
    if isinstance(raw, bool) or raw is None:
        raise TemplateFormatError(f"variable '{name}' needs a number or output(...)/input(...)/variable(...), "
                                  f"got {raw!r}", location)
    kind = value = None
    if isinstance(raw, (int, float)):
        kind, value = "parameter", _as_float(raw)
    elif isinstance(raw, str):
        declared = _DECLARATION.match(raw)
        if declared:
            kind, value = declared.group(1), _number(declared.group(2)) if declared.group(2) else 0.0
        elif _NUMBER_TEXT.match(raw):
            kind, value = "parameter", _number(raw)
    if kind is None:
        raise TemplateFormatError(f"cannot read the value of variable '{name}': {excerpt(raw)}", location,
                                  "write a number (10.0), or output(0.0), input(0.0), variable(0.0)")
    if not cmath.isfinite(value):
        raise TemplateFormatError(f"variable '{name}' must have a finite value, got {excerpt(raw)}", location,
                                  "write an ordinary number (inf, nan and numbers beyond about 1.8e308 are not "
                                  "allowed)")
    return kind, value


def _number(text: str) -> float | complex:
    """A number as the declaration writes it (text matched by _VALUE: never evaluated)."""
    text = "".join(text.split())
    if text == "complex":
        return 0j
    return complex(text) if text[-1] in "jJ" else float(text)


def _as_float(number: int | float) -> float:
    """A YAML number as a float64; an integer too large for one is infinite."""
    try:
        return float(number)
    except OverflowError:
        return math.inf


def variable(name: str, raw: Any, variables: MarkedDict) -> VariableSpec:
    """One entry of `variables:`, short (`tau: 10.0`) or long (`tau: {default:, unit:, description:}`)."""
    location = variables.where(name)
    check_name(name, location)
    unit = description = None
    value_location = variables.where_value(name)
    if isinstance(raw, MarkedDict):
        if set(raw) - {"default", "unit", "description"} or "default" not in raw:
            raise TemplateFormatError(f"variable '{name}' in long form needs 'default:' "
                                      "(and optionally 'unit:' and 'description:')", value_location)
        unit, description = _note(raw, "unit"), _note(raw, "description")
        value_location, raw = raw.where_value("default"), raw["default"]
    kind, default = parse_value(raw, value_location, name)
    return VariableSpec(name, kind, default, location, unit, description)


def overrides(values: Any, location: Location, operator: OperatorTemplate) -> dict:
    """A node's new values for its operator's variables: {name: (value, where it is set)}."""
    if values is None:
        return {}
    if isinstance(values, MarkedDict) and set(values) == {"variables"}:
        values = values["variables"]
    if not isinstance(values, MarkedDict):
        raise TemplateFormatError(f"overrides for '{operator.name}' must map variable names to values", location)
    result = {}
    for name, raw in values.items():
        if name not in operator.variables:
            raise TemplateFormatError(f"operator '{operator.name}' has no variable '{name}'", values.where(name),
                                      did_you_mean(name, operator.variables))
        result[name] = (new_value(raw, values.where_value(name), operator, name), values.where_value(name))
    return result


def new_value(raw: Any, where: Location, operator: OperatorTemplate, name: str) -> float | complex:
    """A new value for a declared variable: complex only where the declaration is (the equations
    were read knowing which variables are complex)."""
    value = parse_value(raw, where, name)[1]
    if isinstance(value, complex) and not isinstance(operator.variables[name].default, complex):
        raise TemplateFormatError(f"complex value {excerpt(raw)} for '{name}', which '{operator.name}' declares real",
                                  where, f"declare it complex in '{operator.name}', e.g. {name}: variable(complex)")
    return value


def equation_edits(raw: MarkedDict) -> EquationEdits:
    """`equations: {replace: {old: new}, add: [...], remove: [...]}` of an inheriting operator."""
    edits = EquationEdits(location=raw.location)
    for key, value in raw.items():
        where = raw.where_value(key)
        if key == "replace":
            edits.replace += _replacements(value, where)
        elif key in ("add", "remove"):
            getattr(edits, key).extend(string_list(value, where, key))
        else:
            raise TemplateFormatError(f"unknown equation edit '{key}'", raw.where(key),
                                      did_you_mean(key, ["replace", "add", "remove"]) or
                                      "the edits are replace, add and remove")
    return edits


def _replacements(value: Any, where: Location) -> list[tuple[MarkedStr, MarkedStr]]:
    if not isinstance(value, MarkedDict):
        raise TemplateFormatError("'replace:' must map old expressions to new ones", where)
    pairs = []
    for old, new in value.items():
        if new is None or isinstance(new, (bool, list, dict)):
            raise TemplateFormatError(f"'replace:' needs an expression to put in place of '{old}', "
                                      f"got {excerpt(new)}", value.where_value(old))
        if not isinstance(new, MarkedStr):  # a number: YAML read `eta: 0.5` as a float
            new = marked_text(str(new), value.where_value(old))
        if not isinstance(old, MarkedStr):  # keys are made text by the loader, without marks
            old = marked_text(str(old), value.where(old))
        pairs.append((old, new))
    return pairs


def edge(row: Any, location: Location, template: EdgeTemplate | None = None) -> EdgeSpec:
    """One row of `edges:`: [source, target, edge_template_or_null, {weight: w, op/var: value or source}]."""
    source, target = row[0], row[1]
    attrs = row[3] if len(row) == 4 else None
    if not isinstance(source, str) or not isinstance(target, str):
        raise TemplateFormatError("edge source and target must be paths node/op/var", location)
    if attrs is None:
        attrs = MarkedDict.empty(location)
    if not isinstance(attrs, MarkedDict):
        raise TemplateFormatError("edge attributes must be a mapping like {weight: 1.0}", location)
    spec = EdgeSpec(str(source), str(target), 1.0, location, template)
    for key, value in attrs.items():
        if key == "weight":
            spec.weight = _edge_weight(value, attrs.where_value(key))
        elif key in ("delay", "spread"):
            setattr(spec, key, _edge_delay(key, value, attrs.where_value(key)))
        elif template is not None and "/" in key:
            _edge_operator_value(spec, key, value, attrs)
        else:
            raise TemplateFormatError(f"unknown edge attribute '{key}'", attrs.where(key),
                                      "edges take weight, delay and spread" + (
                                          f", and values of the edge's operators ({template.name}/op/var)"
                                          if template is not None else ""))
    return spec


def _edge_weight(weight: Any, where: Location) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(_as_float(weight)):
        raise TemplateFormatError(f"edge weight must be a finite number, got {excerpt(weight)}", where)
    return float(weight)


def _edge_delay(key: str, value: Any, where: Location) -> float:
    """An edge's delay or spread: a finite number >= 0 in time units (null means 0)."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DelayError(f"edge {key} must be a finite number >= 0 (time units), got {excerpt(value)}", where)
    return float(value)


def _edge_operator_value(spec: EdgeSpec, key: str, value: Any, attrs: MarkedDict) -> None:
    """`edge/op/var: source` (or a path node/op/var) feeds an input of the edge's operators;
    `edge/op/var: 2.0` sets one of their values. The edge's own name in front is optional."""
    template, where = spec.template, attrs.where(key)
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == template.name:
        parts = parts[1:]
    uses = {use.operator.name: use.operator for use in template.operators}
    operator = uses.get(parts[0]) if len(parts) == 2 else None
    if operator is None or parts[1] not in operator.variables:
        known = [f"{template.name}/{op}/{var}" for op, o in uses.items() for var in o.variables]
        raise TemplateFormatError(f"edge template '{template.name}' has no variable '{key}'", where,
                                  did_you_mean(key, known) or f"write {template.name}/op/var")
    op, var = parts
    if isinstance(value, str) and (value.strip() == "source" or "/" in value):
        if operator.variables[var].kind != "input":
            raise TemplateFormatError(f"'{key}' is fed from '{value}', but it is not declared input(...)", where,
                                      "only an input of an edge operator can read the source or another variable")
        spec.bindings[f"{op}/{var}"] = value.strip()
    else:
        at = attrs.where_value(key)
        spec.overrides.setdefault(op, {})[var] = (new_value(value, at, operator, var), at)
