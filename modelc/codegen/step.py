"""The step program: the statements of one integration step, which every backend translates.

`make_step_program(plan)` asks the plan's scheme (schemes.py) to describe one step, and writes
it down as a flat list of statements over named values. No backend re-derives stages, the
update, Euler's folded dt or the record write: it prints these statements, each in its own way
(NumPy arrays with in-place ufuncs, Python floats, C in CUDA kernels).

    Stage(k, time)                 stage k begins, at t + time*dt
    Combine(target, base, terms)   target = base + dt * sum(coefficient * value): the states a
                                   stage starts from, or the update x + dt * sum(b_j k_j)
    Evaluate(target, expr)         an algebraic variable of the stage (or a coupling's argument,
                                   or the state-dependent rest of a rate), in dependency order
    Product(target, coupling)      target = (scale * W) @ source, the plan's folded coupling
    Rate(target, ...)              one state's sum: linear*x + products + rest + drive; the
                                   derivative k_j, or, with dt folded in (one stage), x_new
    Commit(state, value)           the state takes its new value (after every new value exists)
    Record(state)                  the state's new value goes into this step's record row
    Noise(target, coefficient)     target = g * dW: a noisy state's diffusion coefficient g in the
                                   stage times the step's Wiener increment dW (sqrt(dt) times a
                                   standard normal per unit, drawn a chunk at a time); g that
                                   reads no stage value (coefficient None) comes multiplied in for
                                   the whole chunk. Combine and Rate add their `noise` terms,
                                   sum(coefficient * Noise value), without dt (schemes.py)
    Check(event, condition)        at the step's start: fired = condition on the states the step
                                   starts from (the ones the previous step left); with a refractory
                                   clock, held = clock > dt/2 and fired = condition and not held
    Emit(event, input)             input = fired / dt, the spike train every stage of the step reads
    Reset(event, assignments)      after the update, before the commit: where fired (or held), the
                                   states take their reset values, all computed from the new states
                                   before any is assigned; the clock takes the refractory time where fired
    Remember(history)              stage 0: the delayed variable's value at the step's start joins its
                                   history (a ring buffer of one value per step, after its evaluation)
    Recall(target, read)           target = the history's variable tau before the stage's time

Events, precisely (RectiPy's convention, for every scheme): the spike of step n -> n+1 is
detected on x_n, the state the previous step left. Its spike train H/dt is one constant input
for the whole step, read alike by every stage of a multi-stage scheme (heun, rk4), so one Euler
step of s' = -s/tau_s + spike adds exactly 1 to s per spike (a multi-stage scheme integrates the
same constant input its own way). The resets apply to x_{n+1}, after the scheme's update, and
the record of step n holds the reset values. So a unit that crosses the threshold during step
n-1 shows above it in the record of step n-1, spikes in step n, and is reset after step n. An
event's record ("op/event") counts its spikes in each record row's window of steps. With a
refractory time T, the event's clock (a state, clock' = -1) is set to T where it fires; while
it is above dt/2 (for round(T/dt) steps after the spike's step) the event does not fire and its
resets are applied again after each step (held).

Delays, precisely (one rule for every scheme): a delayed variable x (past(x, tau), x(t - tau), an
edge's delay) has a history of its values at the step times t0 + n*dt: stage 0 of step n writes
x_n (Remember). A stage at time t_n + c*dt reads x at t_n + c*dt - tau, which lies p = tau/dt - c
steps before t_n: the stored value x_{n-p} when p is a whole number, else linear between the two
stored values around it, (1 - f)*x_{n-i} + f*x_{n-i-1} with i = floor(p), f = p - i (Recall).
So Euler with delays of whole steps reads stored values only (exact); Heun and RK4 read the
history at their own stage times, which makes RK4 second order where it reads between steps.
A delay must be at least dt (a step's start then reads only steps before it). Before the run
began, x is its initial value for past(x, tau) (PyRates' DDEHistory) and 0 for an edge's delay
(PyRates' and RectiPy's buffers: nothing was sent before t0). The histories are state: run()
returns them (rec["history"]) and a run given them goes on as one run would. An edge's spread
is no history but PyRates' chain of linear ODEs (ir._Builder._spread).
Expressions use the IR's names; `bindings(k)` maps each name to the Value it means in stage k
(the state x means x itself in stage 0 and the stage's starting value later). Each backend
names every Value once (its `ident`), so one expression prints correctly in every stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import sympy

from ..equations import TIME, symbol
from ..errors import UnsupportedFeatureError
from ..ir import MatVec
from .plan import DelayedRead, History, MatrixProduct, Plan, StatePlan


@dataclass(frozen=True)
class Value:
    """A value one step computes: a state or algebraic in a stage, a rate, a product, a new state."""

    name: str       # the IR name it belongs to (a state, an algebraic, a coupling's accumulator)
    role: str       # "state" | "algebraic" | "product" | "rest" | "rate" | "new" | "time" | "noise"
    stage: int = 0


@dataclass(frozen=True)
class Stage:
    k: int
    time: Fraction              # the stage runs at t + time * dt


@dataclass(frozen=True)
class Combine:
    target: Value
    base: Value
    terms: tuple[tuple[Fraction, Value], ...]   # (coefficient, rate): base + dt * sum
    noise: tuple[tuple[Fraction, Value], ...] = ()  # (coefficient, Noise value): + sum, without dt


@dataclass(frozen=True)
class Evaluate:
    target: Value
    expr: sympy.Expr
    stage: int


@dataclass(frozen=True)
class Product:
    target: Value
    coupling: MatrixProduct
    stage: int


@dataclass(frozen=True)
class Rate:
    target: Value
    state: Value                # the stage's value of the state (read when `linear` is not 0)
    linear: sympy.Expr          # coefficient of the state (with dt folded in: 1 + dt*b*c)
    products: tuple[Value, ...]
    rest: Value | None          # the state-dependent remainder, evaluated before
    drive: bool                 # add this step's precomputed state-independent term
    stage: int
    noise: tuple[tuple[Fraction, Value], ...] = ()  # with dt folded in (x_new): + sum(coefficient * Noise value)


@dataclass(frozen=True)
class Check:
    event: str
    condition: sympy.Basic      # a boolean of the step's own states (stage 0)
    refractory: str | None      # the event's clock state, if it has a refractory time


@dataclass(frozen=True)
class Emit:
    event: str
    input: str                  # the input every stage reads as the spike train

    @property
    def target(self) -> Value:
        return Value(self.input, "emitted")


@dataclass(frozen=True)
class Reset:
    event: str
    assignments: tuple[tuple[str, sympy.Expr], ...]   # (state, value of the new states), all at once
    held: bool                  # also where the event is refractory (the resets are held)
    clock: str | None           # set to `duration` where the event fired
    duration: sympy.Expr | None


@dataclass(frozen=True)
class Noise:
    target: Value                     # Value(state, "noise", k)
    coefficient: sympy.Expr | None    # g in stage k; None: g*dW precomputed for the chunk
    stage: int


@dataclass(frozen=True)
class Commit:
    state: str
    value: Value


@dataclass(frozen=True)
class Record:
    state: str
    value: Value


@dataclass(frozen=True)
class Remember:
    history: History            # at stage 0: the history's value at the step's start joins its buffer


@dataclass(frozen=True)
class Recall:
    target: Value               # Value(name, "delayed", k)
    read: DelayedRead
    stage: int


Statement = Stage | Combine | Evaluate | Product | Rate | Commit | Record | Noise | Check | Emit | Reset | Remember | \
    Recall


@dataclass
class StepProgram:
    plan: Plan
    statements: list = field(default_factory=list)
    stage_times: list[Fraction] = field(default_factory=list)

    def bindings(self, k: int) -> dict[str, Value]:
        """What each IR name the stage's expressions use means in stage k."""
        names = {n: Value(n, "state", k) for n in self.plan.system.states}
        names.update({n: Value(n, "algebraic", k) for n, _ in self.plan.algebraics})
        names.update({c.name: Value(c.name, "product", k) for c in self.plan.couplings})
        names.update({n: Value(n, "emitted") for n in self.plan.system.emitted})
        names.update({d.name: Value(d.name, "delayed", k) for d in self.plan.delays})
        names[TIME.name] = Value(TIME.name, "time", k)
        return names

    def reset_bindings(self) -> dict[str, Value]:
        """What the names of a reset's value mean: the new states, this step's spike trains, the
        step's start time."""
        names = {n: Value(n, "new") for n in self.plan.system.states}
        names.update({n: Value(n, "emitted") for n in self.plan.system.emitted})
        names[TIME.name] = Value(TIME.name, "time", 0)
        return names

    def values(self) -> list[Value]:
        """Every value the step assigns, in order of first assignment."""
        seen: dict[Value, None] = {}
        for s in self.statements:
            target = getattr(s, "target", None)
            if target is not None:
                seen.setdefault(target)
        return list(seen)

    def reads(self) -> set[str]:
        """IR names the step's expressions read (inputs among them need a per-step value)."""
        used = set()
        for s in self.statements:
            if isinstance(s, Evaluate):
                used |= {x.name for x in s.expr.free_symbols}
            elif isinstance(s, Rate):
                used |= {x.name for x in s.linear.free_symbols}
            elif isinstance(s, Product):
                used |= {x.name for x in s.coupling.source.free_symbols}
            elif isinstance(s, Noise) and s.coefficient is not None:
                used |= {x.name for x in s.coefficient.free_symbols}
            elif isinstance(s, Check):
                used |= {x.name for x in s.condition.free_symbols}
            elif isinstance(s, Remember):
                used |= {x.name for x in s.history.value.free_symbols}
            elif isinstance(s, Recall):
                used |= {x.name for x in s.read.tau.free_symbols}
            elif isinstance(s, Reset):
                exprs = [v for _, v in s.assignments] + ([s.duration] if s.duration is not None else [])
                used |= {x.name for e in exprs for x in e.free_symbols}
        return used

    def stage_uses_time(self, k: int) -> bool:
        """Whether stage k reads t at the stage's own time (not only the step's start)."""
        return self.stage_times[k] != 0 and TIME.name in self.reads()


OBSERVE = -1  # the "stage" of the observation: the computed variables of the step's new states


@dataclass
class Observation:
    """The computed (algebraic) variables a step records, from its new states: Evaluate and
    Product statements in dependency order, each W @ x a Product of its own. The forward
    backends compute them with the module's algebraics(); the reverse sweep of a step whose
    computed variables have cotangents differentiates these statements."""

    plan: Plan
    statements: list = field(default_factory=list)

    def bindings(self, k: int = OBSERVE) -> dict[str, Value]:
        names = {n: Value(n, "new") for n in self.plan.system.states}
        names.update({s.target.name: s.target for s in self.statements})
        names[TIME.name] = Value(TIME.name, "time", OBSERVE)
        return names

    def values(self) -> list[Value]:
        return [s.target for s in self.statements]

    @property
    def spike_readers(self) -> dict[str, str]:
        """{computed variable: event} of those that read an event's spike train (see spike_readers)."""
        return spike_readers(self.plan.system)


def spike_readers(system) -> dict[str, str]:
    """{computed variable: the event whose spike train it reads}, directly or through other
    computed variables. A record is observed between steps, where a spike train has no value
    (it is H/dt during a step only), so such a variable cannot be recorded: every backend's
    run() refuses it (SPIKE_READERS of the generated module, its _check_record)."""
    events = {name: e.name for name, e in system.emitted.items()}
    found: dict[str, str] = {}
    for name, expr in system.algebraics:  # in dependency order: what it reads is decided before
        for x in sorted(expr.free_symbols, key=lambda x: x.name):
            event = events.get(x.name) or found.get(x.name)
            if event is not None:
                found[name] = event
                break
    return found


def make_observation(plan: Plan) -> Observation:
    observation = Observation(plan)
    for name, expr in plan.system.algebraics:
        products = {}
        for matvec in sorted(expr.atoms(MatVec), key=str):
            weights, source = matvec.args
            if not isinstance(source, sympy.Symbol):  # the product's argument computed first
                source_name = f"obs_{len(observation.statements)}_source"
                observation.statements.append(Evaluate(Value(source_name, "observed"), source, OBSERVE))
                source = symbol(source_name)
            product = MatrixProduct(f"obs_{len(observation.statements)}", weights.name, sympy.Integer(1), source)
            observation.statements.append(Product(Value(product.name, "observed"), product, OBSERVE))
            products[matvec] = symbol(product.name)
        observation.statements.append(Evaluate(Value(name, "observed"), expr.xreplace(products), OBSERVE))
    return observation


def make_step_program(plan: Plan) -> StepProgram:
    program = StepProgram(plan)
    plan.scheme.steps(_Builder(program))
    _drop_unread(program)
    reads = program.reads()  # a spike train nothing reads is not computed (its event still fires)
    program.statements = [s for s in program.statements if not (isinstance(s, Emit) and s.input not in reads)]
    return program


def _drop_unread(program: StepProgram) -> None:
    """Drop every statement whose value nothing reads, from the end back: a stage's value of a
    state no evaluation of the stage reads, then the rates only such values read. (A new value
    is always read: it is committed.)"""
    live: set[Value] = set()
    kept = []
    for s in reversed(program.statements):
        target = getattr(s, "target", None)
        if target is not None and target.role != "new" and target not in live:
            continue
        live |= _values_read(program, s)
        kept.append(s)
    program.statements = kept[::-1]


def _values_read(program: StepProgram, s) -> set[Value]:
    if isinstance(s, Combine):
        return {s.base} | {v for _, v in s.terms + s.noise}
    if isinstance(s, (Commit, Record)):
        return {s.value}
    if isinstance(s, Rate):
        return ({s.state} if s.linear != 0 else set()) | set(s.products) | ({s.rest} if s.rest else set()) | \
            {v for _, v in s.noise}
    if isinstance(s, Noise):
        bindings = program.bindings(s.stage)
        reads = s.coefficient.free_symbols if s.coefficient is not None else set()
        return {bindings[x.name] for x in reads if x.name in bindings}
    if isinstance(s, (Evaluate, Product, Remember)):
        bindings = program.bindings(0 if isinstance(s, Remember) else s.stage)
        expr = {Evaluate: lambda: s.expr, Product: lambda: s.coupling.source, Remember: lambda: s.history.value}[
            type(s)]()
        return {bindings[x.name] for x in expr.free_symbols if x.name in bindings}
    return set()


class _Builder:
    """Turns a scheme's description of a step (schemes.StepBuilder) into statements."""

    def __init__(self, program: StepProgram):
        self.program = program
        self.plan = program.plan
        self.body = _stage_body(program.plan)

    def stage(self, k: int, time: Fraction, start, noise=()) -> None:
        out = self.program.statements
        self.program.stage_times.append(time)
        out.append(Stage(k, time))
        if k == 0:  # events are checked on the states the step starts from
            out += _checks(self.plan)
        if k > 0:  # stage 0 starts from the step's own states
            for s in self.plan.states:
                terms = tuple((a, Value(s.name, "rate", j)) for j, a in start)
                out.append(Combine(Value(s.name, "state", k), Value(s.name, "state", 0), terms, _noise_terms(s, noise)))
        elif start:
            raise ValueError("the first stage of an explicit scheme starts from the step's states")
        out += [Recall(Value(d.name, "delayed", k), d, k) for d in self.plan.delays]
        for kind, name, expr in self.body:
            if kind == "evaluate":
                out.append(Evaluate(Value(name, "algebraic", k), expr, k))
            elif kind == "rest":
                out.append(Evaluate(Value(name, "rest", k), expr, k))
            else:
                out.append(Product(Value(name, "product", k), expr, k))
        if k == 0:  # after the values it writes, before a later stage reads the step's start from it
            out += [Remember(h) for h in self.plan.histories]
        out += [Noise(Value(s.name, "noise", k), None if s.diffusion_per_chunk else s.diffusion, k)
                for s in self.plan.noise if k == 0 or not s.diffusion_per_chunk]  # (unread ones are dropped)
        role = "new" if self.plan.fold_dt else "rate"
        for s in self.plan.states:
            out.append(Rate(Value(s.name, role, k), Value(s.name, "state", k), s.linear,
                            tuple(Value(c, "product", k) for c in s.couplings),
                            Value(s.name, "rest", k) if s.rest != 0 else None, s.drive != 0, k))

    def update(self, weights, noise=()) -> None:
        out = self.program.statements
        if self.plan.fold_dt and noise:  # x_new is stage 0's Rate: it gains the update's noise
            states = {s.name: s for s in self.plan.states}
            out[:] = [replace(s, noise=_noise_terms(states[s.target.name], noise))
                      if isinstance(s, Rate) and s.target.role == "new" else s for s in out]
        if not self.plan.fold_dt:
            for s in self.plan.states:
                terms = tuple((b, Value(s.name, "rate", j)) for j, b in weights)
                out.append(Combine(Value(s.name, "new"), Value(s.name, "state", 0), terms, _noise_terms(s, noise)))
        out += [Reset(e.name, tuple(e.resets), e.refractory is not None, e.refractory, e.duration)
                for e in self.plan.system.events if e.resets or e.refractory]
        for s in self.plan.states:
            out.append(Commit(s.name, Value(s.name, "new")))
        for s in self.plan.states:
            out.append(Record(s.name, Value(s.name, "new")))


def _checks(plan: Plan) -> list:
    """The Check (and Emit) of every event; an event reads states, parameters, inputs and time,
    never a computed variable (its value at the step's start is not computed for it)."""
    computed = {n for n, _ in plan.system.algebraics}
    out = []
    for e in plan.system.events:
        read = sorted(computed & {x.name for expr in e.expressions() for x in expr.free_symbols})
        if read:
            raise UnsupportedFeatureError(f"event '{e.name}' reads '{read[0]}', a computed variable", e.location,
                                          "an event reads states, parameters, free inputs and t")
        out.append(Check(e.name, e.condition, e.refractory))
        if e.emit:
            out.append(Emit(e.name, e.emit))
    return out


def _noise_terms(s: StatePlan, weights) -> tuple[tuple[Fraction, Value], ...]:
    """(coefficient, g_j dW) of a noisy state for a stage's start or the update; g for a whole
    chunk is one value in every stage, so its coefficients add up."""
    terms: dict[Value, Fraction] = {}
    for j, a in weights if s.diffusion != 0 else ():
        value = Value(s.name, "noise", 0 if s.diffusion_per_chunk else j)
        terms[value] = terms.get(value, Fraction(0)) + a
    return tuple((a, v) for v, a in terms.items() if a != 0)


def _stage_body(plan: Plan) -> list[tuple[str, str, object]]:
    """The evaluations of one stage that the rates need, in dependency order: algebraics,
    coupling products (an algebraic may read a product and a product an algebraic: a function
    node between two populations) and each state's rest. An algebraic nothing in the step reads
    (one that is only recorded) is left to the record step."""
    defined = {n: ("evaluate", n, e, e.free_symbols) for n, e in plan.algebraics}
    defined.update({c.name: ("product", c.name, c, c.source.free_symbols) for c in plan.couplings})
    needed = _closure({x.name for s in plan.states for x in s.rest.free_symbols | s.linear.free_symbols |
                       s.diffusion.free_symbols} | {x.name for h in plan.histories for x in h.value.free_symbols} |
                      {c for s in plan.states for c in s.couplings}, defined)
    pending = {n: (kind, name, what, {x.name for x in reads}) for n, (kind, name, what, reads) in defined.items()
               if n in needed}
    order: list[tuple[str, str, object]] = []
    while pending:
        ready = [n for n, (_, _, _, reads) in pending.items() if not (reads & pending.keys())]
        if not ready:  # the IR rejects cycles of algebraics; a cycle here is a planner bug
            raise ValueError(f"cyclic stage evaluations: {sorted(pending)}")
        for n in ready:
            kind, name, what, _ = pending.pop(n)
            order.append((kind, name, what))
    return order + [("rest", s.name, s.rest) for s in plan.states if s.rest != 0]


def _closure(names: set[str], defined: dict) -> set[str]:
    """The names given and every definition they read, transitively."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in defined and name not in seen:
            seen.add(name)
            todo += [x.name for x in defined[name][3]]
    return seen


__all__ = ["StepProgram", "Observation", "make_observation", "spike_readers", "OBSERVE", "Value", "Stage", "Combine", "Evaluate", "Product", "Rate", "Commit", "Record",
           "Check", "Emit", "Reset", "Noise", "Remember", "Recall", "Statement", "make_step_program"]
