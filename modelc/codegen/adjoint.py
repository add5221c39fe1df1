"""The reverse sweep: the discrete adjoint of one step of the step program (step.py).

Reverse-mode differentiation of the statements a backend prints for one step, so that the
gradients are those of the trajectory the forward loop computes (what autograd through the
same loop would give). Every value of a step is assigned once (the program is in SSA form
within a step), so its adjoint is one sum over the statements that read it:

    Adjoint(value, terms)      lambda(value) = sum of terms; a term is d(reader)/d(value) times
                               lambda(reader), or (scale*W)^T lambda(product) for a product's source
    ParamAdjoint(name, terms)  lambda(name) += the same kind of sum, reduced to the shape of a
                               trainable parameter or of a loop invariant made from one
    (a term with a Reduction passes lambda(reader) back through mean() or sum() over the units)
    DriveAdjoint(state, values) this step's row of lambda(drive) = the sum of lambda(values), the
                               rates that add it: the chunk's state-independent terms are
                               differentiated once per chunk
    WeightAdjoint(coupling)    this step's lambda(product) and the product's source, kept for one
                               matrix product per chunk: lambda(W) += scale * sum_n lambda_n source_n^T

    ResetAdjoint(state, keep)  lambda(new value) *= keep: where an event reset the state, the value
                               the step computed gets no adjoint (the reset value is a constant)

Events use surrogate gradients (RectiPy's): the spike train fired/dt is differentiated as if
fired were the fast sigmoid of x = lhs - rhs of its comparison, d fired/dx = 1/(1 + slope*|x|)^2;
the reset mask is held fixed. A new state value's adjoint comes from outside the step: the next
step's adjoint of the state, plus the cotangent of its record. The adjoint of the step's own states (stage 0) is what the
step passes on to the step before. Derivatives are SymPy's, of the expressions as planned.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from ..errors import UnsupportedFeatureError
from ..equations import PopMean, PopSum, symbol
from .plan import DT, MatrixProduct
from .step import Combine, Emit, Evaluate, Observation, Product, Rate, Reset, StepProgram, Value


@dataclass(frozen=True)
class Reduction:
    """The reader reads its value through m = mean(g) or sum(g) over the population's units:
    the term is factor * R(outer * lambda(reader)), where R sums over the units (and divides by
    their number for a mean) and gives the result to every unit, and factor = dg/d(value).
    Units are counted as the forward does: g given once for every unit counts each unit. When m
    sits inside the argument of another reduction (via), lambda(reader) is first passed through
    that one: factor * R(outer * R_via(outer_via * lambda(reader)))."""

    kind: str             # "mean" | "sum"
    outer: sympy.Expr     # d(reader)/dm, in the reader's stage (it may read m itself)
    argument: sympy.Expr  # g: its population's units are the ones reduced over
    via: "Reduction | None" = None  # m sits inside another reduction's argument: that one first


@dataclass(frozen=True)
class Term:
    adjoint: Value                          # the reader, whose adjoint flows back
    factor: sympy.Expr = sympy.Integer(1)   # d(reader)/d(value), in the reader's stage
    stage: int = 0
    transpose: MatrixProduct | None = None  # a product's source: (scale*W)^T lambda(product)
    reduction: Reduction | None = None      # through mean() or sum(): factor is dg/d(value)


@dataclass(frozen=True)
class Adjoint:
    value: Value
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class ParamAdjoint:
    name: str
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class DriveAdjoint:
    state: str
    values: tuple[Value, ...]   # the rates of every stage that add this step's drive


@dataclass(frozen=True)
class WeightAdjoint:
    coupling: MatrixProduct
    product: Value
    source: Value


@dataclass(frozen=True)
class ResetAdjoint:
    state: str
    keep: sympy.Expr            # 0 where the event fired, else 1 (of the step's own states)


@dataclass
class ReverseStep:
    program: StepProgram
    trainable: frozenset[str]
    statements: list = field(default_factory=list)
    invariants: dict[str, sympy.Expr] = field(default_factory=dict)   # hoisted values with a trainable inside
    drives: dict[str, sympy.Expr] = field(default_factory=dict)       # drives with a trainable inside



def make_reverse_step(program: StepProgram, trainable) -> ReverseStep:
    """The statements of one step's reverse sweep, for the given trainable parameters."""
    plan = program.plan
    trainable = frozenset(trainable)
    reverse = ReverseStep(program, trainable)
    reverse.invariants = {name: expr for name, expr in plan.hoisted if {s.name for s in expr.free_symbols} & trainable}
    reverse.drives = {s.name: s.drive for s in plan.states if {x.name for x in s.drive.free_symbols} & trainable}
    differentiable = trainable | set(reverse.invariants)
    readers = _readers(program, differentiable)
    live = {Value(n, "new") for n in plan.system.states}  # values whose adjoint is not zero
    reverse.statements += _reset_adjoints(program, trainable)
    for value in reversed(program.values()):
        if value.role == "new":
            continue
        terms = tuple(t for t in readers.get(value, ()) if t.adjoint in live)
        if terms:
            live.add(value)
            reverse.statements.append(Adjoint(value, terms))
    for state in plan.system.states:  # the step's own states, read first: what passes to the step before
        value = Value(state, "state", 0)
        reverse.statements.append(Adjoint(value, tuple(t for t in readers.get(value, ()) if t.adjoint in live)))
        live.add(value)
    for name in sorted(differentiable):
        terms = tuple(t for t in readers.get(name, ()) if t.adjoint in live)
        if terms:
            reverse.statements.append(ParamAdjoint(name, terms))
    for state in reverse.drives:
        rates = tuple(s.target for s in program.statements
                      if isinstance(s, Rate) and s.state.name == state and s.drive and s.target in live)
        if rates:
            reverse.statements.append(DriveAdjoint(state, rates))
    for s in program.statements:
        if isinstance(s, Product) and s.coupling.matrix in trainable and s.target in live:
            source = program.bindings(s.stage).get(s.coupling.source.name)
            reverse.statements.append(WeightAdjoint(s.coupling, s.target, source))
    return reverse


@dataclass
class ReverseObservation:
    """The reverse of a step's observation (step.Observation): the computed variables recorded
    with a cotangent pass their adjoint back to the step's new states and to the parameters."""

    observation: Observation
    observed: list[Adjoint]       # lambda(value) = its cotangent, when it has one, + these terms
    into_states: list[Adjoint]    # added to the adjoint of the state's new value
    params: list[ParamAdjoint]
    weights: list[WeightAdjoint]


def make_reverse_observation(observation: Observation, trainable) -> ReverseObservation:
    trainable = frozenset(trainable)
    readers = _readers(observation, trainable)
    new = [Value(n, "new") for n in observation.plan.system.states]
    bindings = observation.bindings()
    return ReverseObservation(
        observation,
        [Adjoint(v, tuple(readers.get(v, ()))) for v in reversed(observation.values())],
        [Adjoint(v, tuple(readers[v])) for v in new if readers.get(v)],
        [ParamAdjoint(n, tuple(readers[n])) for n in sorted(trainable) if readers.get(n)],
        [WeightAdjoint(s.coupling, s.target, bindings[s.coupling.source.name]) for s in observation.statements
         if isinstance(s, Product) and s.coupling.matrix in trainable])


def _readers(program: "StepProgram | Observation", differentiable: set[str]) -> dict:
    """{value or parameter name: the terms through which its readers pass their adjoint back}."""
    found: dict = {}

    def add(key, term: Term) -> None:
        found.setdefault(key, []).append(term)

    def expression(reader: Value, expr: sympy.Expr, k: int) -> None:
        bindings = program.bindings(k)
        # d tanh(v)/dv = 1 - tanh(v)^2 reads the value the forward step computed: 1 - r^2
        computed = {expr: symbol(reader.name)} if reader.role == "algebraic" and not expr.is_Atom else {}
        for x, factor, reduction in partials(expr, computed, reader.name):
            if x.name in bindings:
                add(bindings[x.name], Term(reader, factor, k, reduction=reduction))
            elif x.name in differentiable:
                add(x.name, Term(reader, factor, k, reduction=reduction))

    for s in program.statements:
        if isinstance(s, Combine):
            add(s.base, Term(s.target))
            for a, rate in s.terms:
                add(rate, Term(s.target, sympy.Rational(a.numerator, a.denominator) * DT, s.target.stage))
        elif isinstance(s, Evaluate):
            expression(s.target, s.expr, s.stage)
        elif isinstance(s, Product):
            add(program.bindings(s.stage).get(s.coupling.source.name), Term(s.target, stage=s.stage, transpose=s.coupling))
            if {x.name for x in s.coupling.scale.free_symbols} & differentiable:  # pragma: no cover
                raise UnsupportedFeatureError("internal error: a trainable parameter was folded into a weight matrix")
        elif isinstance(s, Emit):  # the spike train: the surrogate of fired/dt
            expression(s.target, _surrogate(program, s.event), 0)
        elif isinstance(s, Rate):
            expression(s.target, s.linear * symbol(s.state.name), s.stage)  # the state, and parameters in linear
            for p in s.products:
                add(p, Term(s.target))
            if s.rest is not None:
                add(s.rest, Term(s.target))
    return found


class FastSigmoid(sympy.Function):
    """The surrogate of a spike, Heaviside(x) forward: its derivative 1/(1 + slope*|x|)^2 is all the
    reverse sweep reads (RectiPy's fast sigmoid)."""

    nargs = 2  # (x, slope)

    def fdiff(self, argindex=1):
        x, slope = self.args
        if argindex != 1:  # pragma: no cover (the slope is a number)
            raise sympy.core.function.ArgumentIndexError(self, argindex)
        return 1 / (1 + slope * sympy.Abs(x)) ** 2


def _surrogate(program, event_name: str) -> sympy.Expr:
    """fired/dt with fired the fast sigmoid of the distance to the threshold (lhs - rhs of >, >=)."""
    event = next(e for e in program.plan.system.events if e.name == event_name)
    c = event.condition
    if not isinstance(c, (sympy.StrictGreaterThan, sympy.GreaterThan, sympy.StrictLessThan, sympy.LessThan)):
        raise UnsupportedFeatureError(f"the surrogate gradient of event '{event.name}' needs a comparison "
                                      f"(v > v_th), not {c}", event.location)
    x = c.lhs - c.rhs if isinstance(c, (sympy.StrictGreaterThan, sympy.GreaterThan)) else c.rhs - c.lhs
    free = sympy.Piecewise((0, _held(event)), (1, True)) if event.refractory else 1  # no spike while held
    return FastSigmoid(x, sympy.Float(event.slope)) * free / DT


def _held(event) -> sympy.Basic:
    """The event is refractory (step.py: its clock above dt/2 at the step's start)."""
    return sympy.StrictGreaterThan(symbol(event.refractory), DT / 2)


def _reset_adjoints(program: StepProgram, trainable) -> list:
    """lambda(new value) *= (neither fired nor held) for each reset state; a reset value that
    reads a state or a trained parameter has no generated gradient yet."""
    out = []
    for s in program.statements:
        if not isinstance(s, Reset):
            continue
        event = next(e for e in program.plan.system.events if e.name == s.event)
        read = {x.name for _, value in s.assignments for x in value.free_symbols}
        if read & (set(program.plan.system.states) | set(trainable)):
            raise UnsupportedFeatureError(f"gradients of event '{s.event}' are not generated yet: a reset value reads "
                                          f"{sorted(read)[0]} (a state or a trained parameter)", event.location,
                                          "reset to a constant or an untrained parameter")
        reset = sympy.Or(event.condition, _held(event)) if event.refractory else event.condition
        out += [ResetAdjoint(state, sympy.Piecewise((0, reset), (1, True))) for state, _ in s.assignments]
    return out


def partials(expr: sympy.Expr, computed: dict | None = None, where: str = "", via: Reduction | None = None) -> list:
    """(x, factor, reduction) for each way expr reads a free symbol x: directly (factor =
    d(expr)/dx with every mean() and sum() held fixed), and through each mean(g) or sum(g)
    (factor = dg/dx, the Reduction's outer = d(expr)/d(mean)), nested ones too. computed: values
    the forward computed already, substituted into the factors (tanh(v) -> r). via: the
    reduction expr is the argument of (None at the top)."""
    reduced = {r: sympy.Dummy(f"m{j}") for j, r in enumerate(_outermost_reductions(expr))}
    local = expr.xreplace(reduced)
    back = {m: r for r, m in reduced.items()}
    found = []
    for x in sorted(local.free_symbols - set(back), key=lambda x: x.name):
        factor = sympy.diff(local, x).xreplace(back).xreplace(computed or {})
        if factor != 0:
            found.append((x, factor, via))
    for r, m in reduced.items():
        outer = sympy.diff(local, m).xreplace(back).xreplace(computed or {})
        if outer != 0:
            kind = "mean" if isinstance(r, PopMean) else "sum"
            found += partials(r.args[0], None, where, Reduction(kind, outer, r.args[0], via))
    return found


def _outermost_reductions(expr: sympy.Expr) -> list:
    """The mean() and sum() of expr that are not inside another one's argument."""
    found: set = set()

    def walk(e: sympy.Basic) -> None:
        if isinstance(e, (PopMean, PopSum)):
            found.add(e)
        else:
            for a in e.args:
                walk(a)
    walk(expr)
    return sorted(found, key=str)


__all__ = ["ReverseStep", "ReverseObservation", "make_reverse_observation", "Adjoint", "ParamAdjoint", "DriveAdjoint",
           "WeightAdjoint", "ResetAdjoint", "FastSigmoid", "Term", "Reduction", "make_reverse_step", "partials"]
