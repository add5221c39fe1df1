"""The compiler's work between the IR and a backend: what runs once, per chunk, per step.

Backend-neutral. For each state derivative f = sum of terms, every term is sorted into
  - linear:   c * x with c constant in time (x the state itself)  -> a hoisted coefficient
  - coupling: c * W @ y with c one number                         -> c folded into W once
  - drive:    no state in it (inputs, time, parameters)           -> all steps of a chunk at once
  - rest:     everything else, evaluated each step (constant sub-expressions hoisted).
For a one-stage scheme (Euler) the time step is folded in as well: x_new = a*x + (dt*c*W) @ y + ...
A state's white noise g*xi (ir.Diffusion) is sorted likewise: g that reads no state is multiplied into
the chunk's Wiener increments at once (additive noise, like a drive); any other g is evaluated in
the stages (multiplicative noise). A model with noise integrates by its method's stochastic version.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy

from ..equations import TIME, symbol
from ..equations.functions import Delayed
from ..errors import NoiseMethodError, UnsupportedFeatureError
from ..ir import MatVec, System
from .schemes import ExplicitRungeKutta, stochastic

DT = symbol("dt")


@dataclass(frozen=True)
class SpikeDriven:
    """A product whose source changes only through an event's spike train (H/dt where the event
    fired, 0 elsewhere), so that it can be computed from the columns of W of the units that
    fired: O(n * fired) instead of O(n^2), as Brian2 propagates spikes. Either the source is the
    train itself (decay None), or it is a state that each step (one stage, dt folded in) takes to
    decay*source + gain*train with decay and gain numbers, so that the product is carried from
    step to step: acc_new = decay*acc + (scale*W) @ (gain*train). A backend may ignore this and
    compute the product densely: the values are equal to rounding."""

    train: str                          # the emitted input (an event's spike train)
    decay: sympy.Expr | None = None     # None: the source is the train itself
    gain: sympy.Expr | None = None


@dataclass
class MatrixProduct:
    """acc = (scale * W) @ source, where scale * W is prepared once."""

    name: str               # accumulator name
    matrix: str             # the IR matrix parameter
    scale: sympy.Expr       # folded coefficient (1 when nothing folds)
    source: sympy.Expr      # the coupled expression (a symbol after planning)
    spikes: SpikeDriven | None = None  # set when the source changes only through spikes


@dataclass(frozen=True)
class History:
    """The ring buffer of one delayed variable's past values, one per step (step.py: Remember)."""

    name: str               # the buffer's name
    source: str             # the delayed IR variable
    value: sympy.Expr       # its value in a stage (a state, a computed variable, or their definition)
    before: int             # its value before the run began: 1 the value at t0, 0 zero (ir.Delayed)


@dataclass(frozen=True)
class DelayedRead:
    """`name` = the history's variable at (stage time - tau), read by interpolation (step.py: Recall)."""

    name: str
    history: str
    tau: sympy.Expr         # a number or made of scalar parameters (fixed for a run)


@dataclass
class StatePlan:
    name: str
    linear: sympy.Expr      # coefficient of the state itself (0 when none)
    couplings: list[str]    # accumulator names added as they are
    drive: sympy.Expr       # state-independent part
    rest: sympy.Expr        # evaluated each step
    diffusion: sympy.Expr = sympy.Integer(0)  # g of the state's white noise g*xi (0: none)
    diffusion_per_chunk: bool = False         # g reads no stage value: g*dW for a whole chunk at once


@dataclass
class Plan:
    system: System
    scheme: ExplicitRungeKutta
    fold_dt: bool                       # one-stage scheme: dt folded into coefficients
    trainable: frozenset[str] = frozenset()  # parameters a gradient is generated for
    hoisted: list[tuple[str, sympy.Expr]] = field(default_factory=list)   # computed once
    algebraics: list[tuple[str, sympy.Expr]] = field(default_factory=list)  # per stage, in order
    couplings: list[MatrixProduct] = field(default_factory=list)
    states: list[StatePlan] = field(default_factory=list)
    histories: list[History] = field(default_factory=list)
    delays: list[DelayedRead] = field(default_factory=list)

    @property
    def noise(self) -> list[StatePlan]:
        """The states with white noise, in the IR's order (the order of the random stream)."""
        return [s for s in self.states if s.diffusion != 0]

    @property
    def drive_uses_time(self) -> bool:
        return any(TIME in s.drive.free_symbols or s.diffusion_per_chunk and TIME in s.diffusion.free_symbols
                   for s in self.states)

    def step_symbols(self) -> set[str]:
        """Names the per-step terms read (algebraics that only need inputs are kept when read)."""
        used: set[str] = set()
        for _, expr in self.algebraics:
            used |= {s.name for s in expr.free_symbols}
        for s in self.states:
            used |= {x.name for x in (s.rest.free_symbols | s.linear.free_symbols | s.diffusion.free_symbols)}
        for c in self.couplings:
            used |= {x.name for x in c.source.free_symbols}
        for h in self.histories:
            used |= {x.name for x in h.value.free_symbols}
        return used


def make_plan(system: System, scheme: ExplicitRungeKutta, trainable=()) -> Plan:
    """The plan of a system; a trainable parameter is never folded into a weight matrix (its
    gradient needs the product without it)."""
    scheme = _scheme_for(system, scheme)
    if trainable and system.noise:
        raise UnsupportedFeatureError("gradients of a model with noise (xi) are not generated yet", None,
                                      "train a model without noise, or leave train_params empty")
    if trainable and delayed_reads(system):
        raise UnsupportedFeatureError("gradients of a model with delays (past(), x(t - tau), edge delays) are not "
                                      "generated yet", None, "train a model without delays, or leave train_params "
                                      "empty (an edge's spread is ODEs: it trains)")
    plan = Plan(system, scheme, fold_dt=scheme.folds_dt, trainable=frozenset(trainable))
    _Planner(plan, plan.trainable).run()
    return plan


def _scheme_for(system: System, scheme: ExplicitRungeKutta) -> ExplicitRungeKutta:
    """The scheme a model integrates by: with noise, the method's stochastic version."""
    if not system.noise:
        return scheme
    found = stochastic(scheme)
    if found is None:
        state, diffusion = next(iter(system.noise.items()))
        raise NoiseMethodError(f"the method '{scheme.name}' cannot integrate the white noise 'xi' of '{state}'",
                               diffusion.location, "use method='euler' (Euler-Maruyama, Ito) or method='heun' "
                               "(stochastic Heun, Stratonovich)")
    return found


class _Planner:
    def __init__(self, plan: Plan, trainable: set[str]):
        self.plan = plan
        system = plan.system
        self.states = {symbol(n) for n in system.states}
        self.scalar_params = {symbol(n) for n, p in system.params.items()
                              if p.shape == "scalar" and n not in trainable} | {DT}
        self.static = {symbol(n) for n, p in system.params.items() if p.shape != "matrix"} | {DT}
        self.hoist_names: dict[sympy.Expr, sympy.Symbol] = {}
        self.coupling_names: dict[tuple, str] = {}
        self.counter = 0

    def run(self) -> None:
        system, plan = self.plan.system, self.plan
        reads = {d: symbol(f"delayed_{j}") for j, d in enumerate(delayed_reads(system))}
        inline, kept = self._split_algebraics([(n, e.xreplace(reads)) for n, e in system.algebraics])
        stage_dependent = self._state_dependent(kept, set(reads.values()))
        derivatives = {n: _inline(e.xreplace(reads), inline) for n, e in system.derivatives.items()}
        expressions = list(derivatives.values()) + [_inline(e, inline) for _, e in kept]
        _refuse_constant_couplings(expressions, kept,
                                   {symbol(n) for n, p in system.params.items() if p.shape == "scalar"} | {DT, TIME})
        drive_defs = {n: e for n, e in kept if symbol(n) not in stage_dependent}
        matvec_uses = _count_matvecs(expressions)
        for name, expr in kept:
            if symbol(name) in stage_dependent:
                plan.algebraics.append((name, self._hoist(self._extract_matvecs(_inline(expr, inline)))))
        for name, f in derivatives.items():
            plan.states.append(self._state(name, f, stage_dependent, drive_defs, matvec_uses))
        self._diffusions(inline, stage_dependent, drive_defs)
        self._histories(reads, inline)
        # Algebraics that only need inputs stay per step only if per-step code reads them.
        needed = plan.step_symbols()
        extra = [(n, self._hoist(e)) for n, e in drive_defs.items() if n in needed]
        plan.algebraics = extra + plan.algebraics
        for coupling in plan.couplings:
            coupling.spikes = self._spike_driven(coupling.source, derivatives)

    def _histories(self, reads: dict, inline: dict) -> None:
        """One history per delayed variable (and convention before t0), one read per delay."""
        histories: dict[tuple, History] = {}
        for delayed, name in reads.items():
            x, tau, before = delayed.args
            key = (x.name, int(before))
            if key not in histories:
                value = self._extract_matvecs(_inline(x, inline))
                histories[key] = History(f"history_{len(histories)}", x.name, value, int(before))
            self.plan.delays.append(DelayedRead(name.name, histories[key].name, tau))
        self.plan.histories = list(histories.values())

    # -- classification ------------------------------------------------------------

    def _split_algebraics(self, algebraics):
        """Aliases (x = y) and couplings are inlined where used; the rest are computed."""
        inline: dict[sympy.Symbol, sympy.Expr] = {}
        kept = []
        for name, expr in algebraics:
            expr = _inline(expr, inline)
            if isinstance(expr, (sympy.Symbol, sympy.Number)) or expr.has(MatVec):
                inline[symbol(name)] = expr
            else:
                kept.append((name, expr))
        return inline, kept

    def _state_dependent(self, kept, delayed: set[sympy.Symbol]) -> set[sympy.Symbol]:
        # an event's spike train is computed each step from the states (never a precomputed drive),
        # a delayed value from the history at each stage
        dependent = set(self.states) | {symbol(name) for name in self.plan.system.emitted} | delayed
        for name, expr in kept:
            if expr.free_symbols & dependent:
                dependent.add(symbol(name))
        return dependent

    def _state(self, name, f, stage_dependent, drive_defs, matvec_uses) -> StatePlan:
        own = symbol(name)
        scale = DT * rational(self.plan.scheme.b[0]) if self.plan.fold_dt else sympy.Integer(1)
        drive_symbols = {symbol(n): e for n, e in drive_defs.items()}
        linear, drive, rest, couplings = sympy.Integer(0), sympy.Integer(0), sympy.Integer(0), []
        for term in _terms(f):
            coeff, rest_factor = term.as_independent(own, as_Add=False)
            if rest_factor == own and not (coeff.free_symbols - self.static):
                linear += coeff
            elif self._per_chunk(term, stage_dependent, drive_symbols):
                drive += term
            elif (coupled := self._folded_coupling(term, matvec_uses, scale)) is not None:
                couplings.append(coupled)
            else:
                rest += term
        if self.plan.fold_dt:
            linear = 1 + scale * linear
        drive = _inline(scale * drive, drive_symbols) if drive != 0 else drive
        rest = self._hoist(self._extract_matvecs(scale * rest)) if rest != 0 else rest
        linear = self._hoist(linear) if linear.free_symbols else linear
        return StatePlan(name, linear, couplings, drive, rest)

    def _per_chunk(self, term, stage_dependent, drive_symbols) -> bool:
        """Whether a term can be computed for all steps of a chunk at once: it reads no stage value
        (with several stages, a term in t differs per stage: it stays per step)."""
        return not (term.free_symbols & stage_dependent) and \
            (self.plan.fold_dt or TIME not in _inline(term, drive_symbols).free_symbols)

    def _diffusions(self, inline, stage_dependent, drive_defs) -> None:
        """Each noisy state's g: for a whole chunk when it reads no stage value (as a drive), else
        evaluated in the stages (constant parts hoisted, products W @ y extracted)."""
        drive_symbols = {symbol(n): e for n, e in drive_defs.items()}
        plans = {s.name: s for s in self.plan.states}
        for name, diffusion in self.plan.system.noise.items():
            g = _inline(diffusion.coefficient, inline)
            if self._per_chunk(g, stage_dependent, drive_symbols):
                plans[name].diffusion, plans[name].diffusion_per_chunk = _inline(g, drive_symbols), True
            else:
                plans[name].diffusion = self._hoist(self._extract_matvecs(g))

    def _folded_coupling(self, term, matvec_uses, scale) -> str | None:
        """c * W @ y with c one number for all units, and W @ y used only here: fold c into W."""
        matvecs = [f for f in sympy.Mul.make_args(term) if isinstance(f, MatVec)]
        if len(matvecs) != 1 or matvec_uses[matvecs[0]] != 1:
            return None
        coeff = sympy.Mul(*[f for f in sympy.Mul.make_args(term) if f is not matvecs[0]]) * scale
        if coeff.free_symbols - self.scalar_params:
            return None
        return self._coupling(matvecs[0], coeff)

    def _coupling(self, matvec: MatVec, scale: sympy.Expr) -> str:
        weights, source = matvec.args
        if (matvec, scale) in self.coupling_names:  # the same product used twice is computed once
            return self.coupling_names[(matvec, scale)]
        if not isinstance(source, sympy.Symbol):  # products inside the source come first (and are named first)
            source = self._hoist(self._extract_matvecs(source))
        name = f"acc_{len(self.plan.couplings)}"
        self.coupling_names[(matvec, scale)] = name
        if not isinstance(source, sympy.Symbol):
            self.plan.algebraics.append((f"{name}_source", source))
            source = symbol(f"{name}_source")
        self.plan.couplings.append(MatrixProduct(name, weights.name, scale, source))
        return name

    def _extract_matvecs(self, expr: sympy.Expr) -> sympy.Expr:
        """Every W @ y left in an expression becomes an accumulator computed once per stage."""
        found = {m: symbol(self._coupling(m, sympy.Integer(1))) for m in expr.atoms(MatVec)}
        return expr.xreplace(found) if found else expr

    def _spike_driven(self, source: sympy.Expr, derivatives: dict) -> SpikeDriven | None:
        """How a product's source changes through spikes alone, if it does: it is a spike train,
        or (one stage) a state whose derivative is a*source + b*train with a and b numbers (not
        trained), no noise and no reset (a synaptic trace s' = -s/tau_s + spike)."""
        system, name = self.plan.system, getattr(source, "name", None)
        if name in system.emitted:
            return SpikeDriven(name)
        if not self.plan.fold_dt or name not in derivatives or name in system.noise or \
                any(state == name for e in system.events for state, _ in e.resets):
            return None
        own, trains = symbol(name), {symbol(n) for n in system.emitted}
        factors: dict[sympy.Symbol, sympy.Expr] = {}
        for term in _terms(derivatives[name]):
            factor = next((x for x in term.free_symbols if x == own or x in trains), None)
            coeff = term / factor if factor is not None else term
            if factor is None or coeff.free_symbols - self.scalar_params or coeff.has(factor):
                return None
            factors[factor] = factors.get(factor, sympy.Integer(0)) + coeff
        found = [x for x in factors if x in trains]
        if len(found) != 1:
            return None
        step = DT * rational(self.plan.scheme.b[0])
        return SpikeDriven(found[0].name, 1 + step * factors.get(own, sympy.Integer(0)), step * factors[found[0]])

    # -- hoisting --------------------------------------------------------------------

    def _hoist(self, expr: sympy.Expr) -> sympy.Expr:
        """Replace every maximal sub-expression that is constant in time by a precomputed name."""
        if not expr.free_symbols or expr.is_Atom:
            return expr
        if expr.free_symbols <= self.static and isinstance(expr, sympy.Expr):  # (a condition or a branch
            return self._hoisted_name(expr)                                     # of a choice is no number)
        if isinstance(expr, (sympy.Add, sympy.Mul)):
            static = [a for a in expr.args if a.free_symbols <= self.static]  # numbers too
            dynamic = [self._hoist(a) for a in expr.args if not a.free_symbols <= self.static]
            if any(a.free_symbols for a in static):
                static = [self._hoisted_name(expr.func(*static))]
            return expr.func(*static, *dynamic)
        return expr.func(*[self._hoist(a) for a in expr.args])

    def _hoisted_name(self, expr: sympy.Expr) -> sympy.Expr:
        if isinstance(expr, sympy.Symbol) or (-expr).is_Symbol:  # nothing to save
            return expr
        if expr not in self.hoist_names:
            name = f"c_{self.counter}"
            self.counter += 1
            self.hoist_names[expr] = symbol(name)
            self.plan.hoisted.append((name, expr))
        return self.hoist_names[expr]


_MOST_TERMS = 64  # a product of sums is multiplied out only up to this many terms


def _terms(f: sympy.Expr) -> list[sympy.Expr]:
    """The terms of f, each product of sums multiplied out while that stays small ((x + a)*(x + b)
    gives x^2 + ...; thirteen such factors would give 8192 terms: that product stays one term)."""
    terms = []
    for term in sympy.Add.make_args(f):
        sums = [len(a.args) for a in sympy.Mul.make_args(term) if isinstance(a, sympy.Add)]
        if math.prod(sums) > _MOST_TERMS:
            terms.append(term)
        else:
            terms += sympy.Add.make_args(sympy.expand(term, deep=False, power_exp=False, power_base=False,
                                                      log=False, multinomial=False))
    return terms


def rational(value) -> sympy.Rational:
    """A tableau entry (a Fraction) as an exact SymPy number."""
    return sympy.Rational(value.numerator, value.denominator)


def _inline(expr: sympy.Expr, definitions: dict) -> sympy.Expr:
    """Substitute definitions repeatedly until none of their names is left."""
    for _ in range(len(definitions) + 1):
        if not definitions or not (expr.free_symbols & definitions.keys()):
            return expr
        expr = expr.xreplace(definitions)
    return expr


def _refuse_constant_couplings(exprs, algebraics, constants) -> None:
    """W @ c with c one number for every unit (an equation y = 2, or y = 2*k of a scalar k) has
    no units to couple: say so, rather than multiply a matrix by a number."""
    constants = set(constants)
    for name, expr in algebraics:  # (in dependency order)
        if expr.free_symbols <= constants:
            constants.add(symbol(name))
    for expr in exprs:
        for matvec in expr.atoms(MatVec):
            weights, source = matvec.args
            if source.free_symbols <= constants:
                raise UnsupportedFeatureError(f"'{weights.name}' couples {source}, one number for every unit, into "
                                              "a population", None, "couple a variable with a value per unit")


def delayed_reads(system: System) -> list[Delayed]:
    """Every distinct delayed value the equations read, in a fixed order."""
    found = set()
    for expr in [e for _, e in system.algebraics] + list(system.derivatives.values()):
        found |= expr.atoms(Delayed)
    return sorted(found, key=sympy.default_sort_key)


def _count_matvecs(exprs) -> dict:
    counts: dict = {}
    for expr in exprs:
        for term in sympy.preorder_traversal(expr):
            if isinstance(term, MatVec):
                counts[term] = counts.get(term, 0) + 1
    return counts
