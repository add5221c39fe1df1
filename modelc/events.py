"""The IR's events: an operator's `events:` (spec/events.py) parsed with the equation grammar and
checked against its variables. Every mistake is an error located in the model file.

An Event of the System (ir.py) holds qualified names ("node/op/var"):

    condition   a boolean of the step's own states (v > v_th); a number means "not 0"
    resets      [(state, value)] applied after the step, all at once (the values read the new states)
    emit        the input that receives the spike train H/dt during the step (it is no free input)
    refractory  the clock state that counts the refractory time down (clock' = -1), and the duration

What this means step by step is written once, in codegen/step.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import sympy

from .equations import TIME, parse_equation, parse_expression, raise_all, symbol
from .errors import EventError, Location, ModelcError, TextOrigin, UndefinedSymbolError, did_you_mean
from .spec import OperatorTemplate
from .spec.events import EventSpec


@dataclass
class Event:
    name: str
    condition: sympy.Basic
    resets: list[tuple[str, sympy.Expr]] = field(default_factory=list)
    emit: str | None = None
    refractory: str | None = None        # the clock state (counts the time left, down to 0 and below)
    duration: sympy.Expr | None = None   # the refractory time
    location: Location | None = None
    slope: float = 1.0                   # the fast sigmoid surrogate's slope (gradients)

    def expressions(self) -> list[sympy.Basic]:
        return [self.condition] + [v for _, v in self.resets] + ([self.duration] if self.duration is not None else [])


def refractory_clock(name: str) -> str:
    """The name of an event's refractory clock state ("op/spike" -> "op/spike_refractory")."""
    return f"{name}_refractory"


def operator_events(prefix: str, op: OperatorTemplate, states: set[str]) -> list[Event]:
    """The events of one operator; `states` are its variables that an ODE defines (local names)."""
    qualify = {symbol(name): symbol(f"{prefix}{op.name}/{name}") for name in op.variables}
    emitted: dict[str, str] = {}
    events = []
    own = f"{prefix}{op.name}/"
    errors = []
    for spec in op.events.values():
        try:
            local = _event(spec, op, states, emitted)  # names as the operator writes them
        except ModelcError as error:  # every event's mistakes reported together (modelc check)
            errors.append(error)
            continue
        name = own + spec.name
        events.append(dataclasses.replace(
            local, name=name, condition=local.condition.xreplace(qualify),
            resets=[(own + target, value.xreplace(qualify)) for target, value in local.resets],
            emit=own + local.emit if local.emit else None,
            duration=local.duration.xreplace(qualify) if local.duration is not None else None,
            refractory=refractory_clock(name) if local.duration is not None else None))
    raise_all(errors)
    return events


def _event(spec: EventSpec, op: OperatorTemplate, states: set[str], emitted: dict[str, str]) -> Event:
    clash = op.variables.get(spec.name)
    if clash is not None and spec.name != spec.emit:
        raise EventError(f"event '{spec.name}' has the name of variable '{spec.name}' of '{op.name}'",
                         spec.location, "rename the event (only the input it emits may share its name)")
    if spec.refractory is not None and refractory_clock(spec.name) in op.variables:
        raise EventError(f"event '{spec.name}' needs the name '{refractory_clock(spec.name)}' for its refractory "
                         f"clock, but '{op.name}' has a variable of that name", spec.location, "rename one of them")
    condition = _condition(spec, op, states)
    resets = _resets(spec, op, states)
    _check_emit(spec, op, emitted)
    duration = None
    if spec.refractory is not None:
        duration, spans, origin = _expression(spec.refractory, op)
        for name in spans:
            if op.variables.get(name) is None or op.variables[name].kind != "parameter":
                span = spans[name][0]
                raise EventError(f"the refractory time of event '{spec.name}' reads '{name}', which is not a "
                                 "parameter", origin.at(span.offset, span.length),
                                 "write a number or a parameter, e.g. refractory: t_ref")
        _check_held(spec, resets)
    return Event(spec.name, condition, resets, spec.emit, None, duration, spec.location,
                 spec.slope if spec.slope is not None else 1.0)


def _origin(text: str) -> TextOrigin:
    return getattr(text, "origin", None) or TextOrigin.for_string(str(text))


def _expression(text: str, op: OperatorTemplate):
    origin = _origin(text)
    expr, spans = parse_expression(str(text), origin)
    _check_names(spans, op, origin)
    return expr, spans, origin


def _check_names(spans: dict, op: OperatorTemplate, origin: TextOrigin) -> None:
    for name, found in spans.items():
        if name not in op.variables and name != TIME.name:
            raise UndefinedSymbolError(f"undefined symbol '{name}' in an event of operator '{op.name}'",
                                       origin.at(found[0].offset, found[0].length),
                                       did_you_mean(name, op.variables) or f"declare it under variables: of '{op.name}'")


def _condition(spec: EventSpec, op: OperatorTemplate, states: set[str]) -> sympy.Basic:
    """`when:` as a boolean: a comparison (v > v_th) as it is, any other number as "not 0"."""
    expr, spans, origin = _expression(spec.when, op)
    if not set(spans) & states:
        raise EventError(f"the condition of event '{spec.name}' reads no state of '{op.name}'",
                         origin.at(0, len(spec.when)), "an event checks a state, e.g. when: \"v > v_th\"")
    if isinstance(expr, sympy.Piecewise) and len(expr.args) == 2 and expr.args[0][0] == 1 and \
            expr.args[1] == (0, True):
        return expr.args[0][1]
    return sympy.Ne(expr, 0)


def _resets(spec: EventSpec, op: OperatorTemplate, states: set[str]) -> list[tuple[str, sympy.Expr]]:
    resets: dict[str, sympy.Expr] = {}
    for text in spec.reset:
        origin = _origin(text)
        equation = parse_equation(str(text), origin)
        where = equation.origin.at(equation.target_span.offset, equation.target_span.length)
        if equation.kind != "algebraic":
            raise EventError(f"a reset assigns a new value; '{text}' is a differential equation", where,
                             f"write {equation.target} = value, e.g. v = v_r")
        if equation.target not in states:
            what = "not a variable" if equation.target not in op.variables else "not a state (no ODE defines it)"
            raise EventError(f"event '{spec.name}' resets '{equation.target}', which is {what} of '{op.name}'", where,
                             did_you_mean(equation.target, states) or "a reset assigns a state, e.g. v = v_r")
        if equation.target in resets:
            raise EventError(f"event '{spec.name}' resets '{equation.target}' twice", where,
                             "each state is reset once per event")
        _check_names(equation.symbol_spans, op, origin)
        resets[equation.target] = equation.rhs
    return list(resets.items())


def _check_emit(spec: EventSpec, op: OperatorTemplate, emitted: dict[str, str]) -> None:
    if spec.emit is None:
        return
    var = op.variables.get(spec.emit)
    if var is None or var.kind != "input":
        what = "not a variable" if var is None else f"declared {var.kind}"
        raise EventError(f"event '{spec.name}' emits into '{spec.emit}', which is {what} of '{op.name}'",
                         spec.emit_location, did_you_mean(spec.emit, op.variables) if var is None else
                         f"declare it {spec.emit}: input(0.0); it receives the spike train")
    if spec.emit in emitted:
        raise EventError(f"events '{emitted[spec.emit]}' and '{spec.name}' both emit into '{spec.emit}'",
                         spec.emit_location, "give each event its own input")
    emitted[spec.emit] = spec.name


def _check_held(spec: EventSpec, resets: list[tuple[str, sympy.Expr]]) -> None:
    """During the refractory time the resets are applied again after every step (the values are
    held), so a reset must not read what the event resets (u = u + d would add d every step)."""
    targets = {target for target, _ in resets}
    for target, value in resets:
        read = sorted(targets & {s.name for s in value.free_symbols})
        if read:
            raise EventError(f"event '{spec.name}' has a refractory time, so its resets are held; the reset of "
                             f"'{target}' reads '{read[0]}'", spec.location,
                             "a held reset assigns a value that does not depend on what it resets, e.g. v = v_r")
