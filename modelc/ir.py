"""The IR: one flat, checked `System` built from templates.

A population of n identical units is one vector symbol; n itself is not part of the IR
(it comes with the arrays at run time), so compile time does not grow with n. Names are
"op/var" for a lone node and "node/op/var" inside a circuit or network.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable

import sympy

from .equations import TIME, Equation, free_names, operator_equations, raise_all, symbol
from .equations.functions import CONSTANTS, NOISE, RESERVED, Delayed, with_real_symbols
from .equations.limits import ExpressionLimits, computing
from .errors import (AlgebraicCycleError, DelayError, DuplicateDefinitionError, EquationSyntaxError, EventError, InvalidNameError,
                     Location,
                     ModelcError, NotAStateError, TemplateFormatError, UndefinedSymbolError, WiringError,
                     NoisePlacementError, NoiseTermError, did_you_mean)
from .events import Event, operator_events
from .spec import (CircuitTemplate, EdgeSpec, EdgeTemplate, NodeTemplate, OperatorTemplate, OperatorUse, Template,
                   VariableSpec)



class MatVec(sympy.Function):
    """`MatVec(W, x)`: the coupling W @ x, W[i, j] the weight from source unit j to target unit i."""

    nargs = 2
    is_real = True


@dataclass
class State:
    name: str
    init: float
    location: Location | None = None
    unit: str | None = None
    description: str | None = None


@dataclass
class Param:
    name: str
    default: float | None  # None: a weight matrix, given at run time
    shape: str = "scalar"  # "scalar", "vector" (per unit or per batch member), or "matrix"
    location: Location | None = None
    unit: str | None = None
    description: str | None = None


@dataclass
class Input:
    name: str
    default: float
    location: Location | None = None
    unit: str | None = None
    description: str | None = None


@dataclass
class Connection:
    """`target += weight * source` (a number) or `target += W @ source` (weight = matrix param name)."""

    source: str
    target: str
    weight: float | str = 1.0
    location: Location | None = None
    delay: float = 0.0      # the source as it was `delay` time units ago (zero before the run began)
    spread: float = 0.0     # > 0: PyRates' gamma-distributed delay, a chain of linear ODEs (_Builder._spread)
    delays: str | None = None  # a parameter of one delay per source unit (time units): RectiPy's add_edge delays=


@dataclass(frozen=True)
class Diffusion:
    """The white noise of one state: x' = f + g*xi is the SDE dx = f dt + g dW, with one standard
    Wiener process W per state and unit. f stays in System.derivatives; `coefficient` is g (it may
    read states: multiplicative noise); `location` is where xi stands in the equation."""

    coefficient: sympy.Expr
    location: Location | None = None


@dataclass
class System:
    name: str
    description: str
    states: dict[str, State]
    params: dict[str, Param]
    inputs: dict[str, Input]
    algebraics: list[tuple[str, sympy.Expr]]  # in dependency order
    derivatives: dict[str, sympy.Expr]
    populations: dict[str, list[str]]  # population label -> the names of its variables
    # (operator prefix, equation) for display: the text after inheritance edits, names unqualified
    equations: list[tuple[str, Equation]] = field(default_factory=list)
    noise: dict[str, Diffusion] = field(default_factory=dict)  # state -> its white noise, in state order
    events: list[Event] = field(default_factory=list)  # threshold-reset rules (modelc/events.py)
    complex_names: frozenset[str] = frozenset()  # the variables declared complex (the module computes in complex)

    @property
    def outputs(self) -> list[str]:
        """What run() can record: states, computed variables, and events (their spike counts)."""
        return list(self.states) + [name for name, _ in self.algebraics] + [e.name for e in self.events]

    @property
    def emitted(self) -> dict[str, Event]:
        """{input: the event whose spike train it receives}."""
        return {e.emit: e for e in self.events if e.emit}


# --- building a System -----------------------------------------------------------------

class _Builder:
    """Collects the variables of populations and connections, then checks and orders them."""

    def __init__(self, name: str, description: str):
        self.name, self.description = name, description
        self.states: dict[str, State] = {}
        self.params: dict[str, Param] = {}
        self.inputs: dict[str, Input] = {}
        self.algebraic_defs: dict[str, tuple[sympy.Expr, Location | None]] = {}
        self.derivatives: dict[str, sympy.Expr] = {}
        self.derivative_locations: dict[str, Location | None] = {}  # where each state's equation is
        self.input_sources: dict[str, list[sympy.Expr]] = {}  # input name -> summed contributions
        self.input_specs: dict[str, VariableSpec] = {}
        self.variables: dict[str, str] = {}  # qualified name -> kind
        self.populations: dict[str, list[str]] = {}
        self.equations: list[tuple[str, Equation]] = []
        self.events: list[Event] = []
        self.complex_names: set[str] = set()  # qualified names of the variables declared complex
        self.noise: dict[str, Diffusion] = {}
        self.errors: list[ModelcError] = []
        self.chains = 0  # delay chains of edges with a spread, numbered in the states' names

    # -- one population ---------------------------------------------------------------

    def add_population(self, label: str | None, node: NodeTemplate | EdgeTemplate | OperatorTemplate) -> None:
        uses = [OperatorUse(node)] if isinstance(node, OperatorTemplate) else node.operators
        prefix = f"{label}/" if label else ""
        names: list[str] = []
        outputs_by_var: dict[str, list[str]] = {}
        parsed: list[tuple[OperatorUse, list[Equation]]] = []
        for use in uses:
            try:
                parsed.append((use, operator_equations(use.operator)))
            except ModelcError as exc:
                self.errors.append(exc)
        for use, equations in parsed:
            for var in use.operator.variables.values():
                if isinstance(var.default, complex):
                    self.complex_names.add(f"{prefix}{use.operator.name}/{var.name}")
                if var.kind == "output":
                    outputs_by_var.setdefault(var.name, []).append(f"{prefix}{use.operator.name}/{var.name}")
        for use, equations in parsed:
            try:
                names += self._add_operator(prefix, use, equations, outputs_by_var)
            except ModelcError as exc:
                self.errors.append(exc)
        self.populations[label or ""] = names

    def _add_operator(self, prefix: str, use: OperatorUse, equations: list[Equation],
                      outputs_by_var: dict[str, list[str]]) -> list[str]:
        """Check an operator's equations and add its variables; returns their qualified names."""
        op = use.operator
        _check_variable_names(op)
        variables = _declared(op, equations)
        defined = self._equations_by_target(prefix, op, equations, variables)
        qualify = {symbol(name, isinstance(var.default, complex)): self._symbol(f"{prefix}{op.name}/{name}")
                   for name, var in variables.items()}
        names = []
        for var in variables.values():
            name = f"{prefix}{op.name}/{var.name}"
            default = use.overrides.get(var.name, (var.default, None))[0]
            eq = defined.get(var.name)
            if var.kind == "parameter":
                self.params[name] = Param(name, default, "scalar", var.location, var.unit, var.description)
            elif var.kind == "input":
                own = f"{prefix}{op.name}/"  # an operator's input never reads its own output
                sources = outputs_by_var.get(var.name, [])
                self.input_sources[name] = [self._symbol(n) for n in sources if not n.startswith(own)]
                self.input_specs[name] = VariableSpec(name, "input", default, var.location, var.unit, var.description)
            elif eq is None:
                raise UndefinedSymbolError(
                    f"'{var.name}' is declared {var.kind}(...) in '{op.name}' but no equation defines it",
                    var.location, did_you_mean(var.name, defined) or
                    "declare it as a plain number if it is a constant parameter")
            elif eq.kind == "ode":
                self.states[name] = State(name, default, var.location, var.unit, var.description)
                self.derivatives[name] = self._drift(name, eq, eq.rhs.xreplace(qualify))
                self.derivative_locations[name] = eq.location()
            else:
                self.algebraic_defs[name] = (_without_noise(eq, eq.rhs.xreplace(qualify)), eq.location())
            self.variables[name] = var.kind
            names.append(name)
        return names + self._add_events(operator_events(prefix, op, {v for v, eq in defined.items()
                                                                     if eq.kind == "ode"}))

    def _add_events(self, events: list[Event]) -> list[str]:
        """An operator's events, each with its refractory clock (a state: clock' = -1, set to the
        refractory time at a spike); returns the names they add to the population."""
        names = []
        for event in events:
            if event.refractory:
                self.states[event.refractory] = State(event.refractory, 0.0, event.location, None,
                                                      f"refractory time left of event {event.name}")
                self.derivatives[event.refractory] = sympy.Integer(-1)
                self.derivative_locations[event.refractory] = event.location
                self.variables[event.refractory] = "variable"
                names.append(event.refractory)
            names.append(event.name)
        self.events += events
        return names

    def _drift(self, name: str, eq: Equation, rhs: sympy.Expr) -> sympy.Expr:
        """The drift f of x' = f + g*xi; g goes to self.noise. xi must enter linearly: then
        d(rhs)/d(xi) is g and holds no xi (xi inside a function or a power leaves xi in it)."""
        if NOISE not in rhs.free_symbols:
            return rhs
        coefficient = sympy.diff(rhs, NOISE)
        if coefficient == 0 or coefficient.has(NOISE):
            raise NoiseTermError(f"white noise 'xi' must enter the equation of '{eq.target}' linearly",
                                 eq.location(NOISE.name), "write x' = f + g*xi: xi times an expression "
                                 "without xi, added to the rest (not inside a function or a power)")
        self.noise[name] = Diffusion(coefficient, eq.location(NOISE.name))
        return rhs.xreplace({NOISE: sympy.Integer(0)})

    def _equations_by_target(self, prefix: str, op: OperatorTemplate, equations: list[Equation],
                             variables: dict[str, VariableSpec]) -> dict[str, Equation]:
        """Each equation defines one state or computed variable, once; every name it reads is known
        (all the unknown names of the operator are reported together)."""
        defined: dict[str, Equation] = {}
        undefined: dict[str, ModelcError] = {}
        for eq in equations:
            self.equations.append((prefix + op.name, eq))
            spec = variables[eq.target]
            if eq.target in defined:
                raise DuplicateDefinitionError(f"'{eq.target}' is defined twice in operator '{op.name}'",
                                               eq.location(), "each variable has one equation")
            if spec.kind in ("parameter", "input"):
                cls = NotAStateError if eq.kind == "ode" else DuplicateDefinitionError
                what = "a constant parameter" if spec.kind == "parameter" else "an input"
                raise cls(f"'{eq.target}' is {what}; an equation cannot define it", eq.location(),
                          f"declare it as variable({spec.default}) or output({spec.default}) to make it a "
                          + ("state" if eq.kind == "ode" else "computed variable"))
            defined[eq.target] = eq
            for name in eq.names():
                if name not in variables and name not in (TIME.name, NOISE.name) and name not in undefined:
                    undefined[name] = UndefinedSymbolError(
                        f"undefined symbol '{name}' in operator '{op.name}'", eq.location(name),
                        did_you_mean(name, variables) or f"declare it under variables: of '{op.name}'")
        raise_all(list(undefined.values()))
        return defined

    # -- connections --------------------------------------------------------------------

    def connect(self, connection: Connection) -> None:
        for end in ("source", "target"):
            path = getattr(connection, end)
            if path not in self.variables:
                raise WiringError(f"edge {end} '{path}' is not a variable of this model", connection.location,
                                  did_you_mean(path, self.variables) or "write node/op/var")
        if connection.target not in self.input_sources:
            raise WiringError(f"edge target '{connection.target}' must be declared input(...)", connection.location,
                              "edges add into inputs; declare the target variable as input(0.0)")
        source = self._delayed(connection, self._symbol(connection.source))
        if isinstance(connection.weight, str):
            weight = symbol(connection.weight)
            if connection.weight not in self.params:
                self.params[connection.weight] = Param(connection.weight, None, "matrix", connection.location)
            term = MatVec(weight, source)
        else:
            term = sympy.Float(connection.weight) * source
        self.input_sources[connection.target].append(term)

    def _delayed(self, connection: Connection, source: sympy.Symbol) -> sympy.Expr:
        """What an edge passes on: its source now, delayed, or through a chain for a spread.

        An edge's delay is PyRates' and RectiPy's transmission delay: the target receives zero
        until the delay has passed (nothing was sent before the run began); with a spread the
        chain starts at rest (0) for the same reason."""
        if connection.spread > 0:
            return self._spread(connection, source)
        if connection.delays is not None:  # one per source unit: a parameter of the source's population
            label = next(label for label, names in self.populations.items() if connection.source in names)
            self.params[connection.delays] = Param(connection.delays, 0.0, "vector", connection.location, None,
                                                   f"the delay of each unit of {connection.source} on an edge")
            self.populations[label].append(connection.delays)
            return Delayed(source, symbol(connection.delays), sympy.Integer(0))
        if connection.delay > 0:
            return Delayed(source, sympy.Float(connection.delay), sympy.Integer(0))
        return source

    def _spread(self, connection: Connection, source: sympy.Symbol) -> sympy.Expr:
        """PyRates' spread: a gamma kernel of mean `delay` and standard deviation `spread`, of order
        n = round((delay/spread)^2) and rate a = n/delay, realised as n linear ODEs
        z_k' = a*(z_{k-1} - z_k), z_0 the source, z_k(t0) = 0; the edge passes z_n (n = 0: the
        source itself). States "source_d{j}_{k}" in the source's population."""
        order = round((connection.delay / connection.spread) ** 2)
        if order == 0:
            return source
        label = next(label for label, names in self.populations.items() if connection.source in names)
        chain, self.chains = self.chains, self.chains + 1
        rate, previous = sympy.Float(order / connection.delay), source
        for k in range(1, order + 1):
            name = f"{connection.source}_d{chain}_{k}"
            self.states[name] = State(name, 0.0, connection.location, None,
                                      f"stage {k} of {order} of the delay chain of an edge from {connection.source}")
            self.derivatives[name] = rate * (previous - symbol(name))
            self.derivative_locations[name] = connection.location
            self.variables[name] = "variable"
            self.populations[label].append(name)
            previous = symbol(name)
        return previous

    # -- checks and ordering ------------------------------------------------------------

    def finish(self, vector_params: Iterable[str] = ()) -> System:
        raise_all(self.errors)
        emitted = {e.emit: e for e in self.events if e.emit}
        for name, sources in self.input_sources.items():
            spec = self.input_specs[name]
            if name in emitted:  # the event's spike train, nothing else
                if sources:
                    raise EventError(f"'{name}' receives the spike train of event '{emitted[name].name}'; it cannot "
                                     "also be fed by edges or other operators", spec.location,
                                     "give the edges another input")
                continue
            if sources:
                self.algebraic_defs[name] = (_input_sum(name, sources, spec.location), spec.location)
            else:
                self.inputs[name] = Input(name, spec.default, spec.location, spec.unit, spec.description)
        self._with_real_symbols()
        self._check_delays()
        unread = self._drop_unread()
        self._make_vectors(vector_params, unread)
        algebraics = _dependency_order(self.algebraic_defs)
        self._check_with_constants_put_in(algebraics)
        return System(self.name, self.description, self.states, self.params, self.inputs, algebraics,
                      self.derivatives, self.populations, self.equations, noise=self.noise, events=self.events,
                      complex_names=frozenset(self.complex_names))

    def _symbol(self, name: str) -> sympy.Symbol:
        """The symbol of a qualified variable: complex where it is declared complex."""
        return symbol(name, name in self.complex_names)

    def _with_real_symbols(self) -> None:
        """Every expression in real symbols, as later stages look them up by name (complex ones
        were needed while parsing and wiring, so that SymPy kept conj(z) and |z|^2), and the
        complex functions as the backends print them (angle(x) of a real x stays too)."""
        self.derivatives = {name: with_real_symbols(expr) for name, expr in self.derivatives.items()}
        self.algebraic_defs = {name: (with_real_symbols(expr), where)
                               for name, (expr, where) in self.algebraic_defs.items()}

    def _check_delays(self) -> None:
        """past(x, tau): x a state (as in PyRates: its history before t0 is its initial value); tau a
        number or made of parameters (one value for a run: the history's length comes from it).
        An input wired to a state (tanh_op's v, li_op's output) is that state. (An edge's delay may
        delay a computed variable too: its history before t0 is 0.)"""
        self._delays_of_wired_states()
        defined = [(name, expr, where) for name, (expr, where) in self.algebraic_defs.items()]
        defined += [(name, expr, self.derivative_locations[name]) for name, expr in self.derivatives.items()]
        for name, expr, where in defined:
            for delayed in expr.atoms(Delayed):
                x, tau, before = delayed.args
                if not before and x.name in self.algebraic_defs:  # an edge's delay of a computed variable
                    continue
                if not isinstance(x, sympy.Symbol) or x.name not in self.states:
                    raise DelayError(f"the delay in the equation of '{name}' delays {x}, which is not a state", where,
                                     "delay a state (a variable with a differential equation): past(x, tau) or "
                                     "x(t - tau); its history before t0 is its initial value")
                if not tau.free_symbols <= {symbol(p) for p in self.params}:
                    raise DelayError(f"the delay {tau} of {x} in the equation of '{name}' must be a number or made "
                                     "of parameters", where, "a delay is fixed for a run, e.g. past(x, 1.5) or "
                                     "past(x, d) with d: 1.5")
                if tau.is_number and tau < 0:
                    raise DelayError(f"the delay {tau} of {x} in the equation of '{name}' is negative", where,
                                     "past(x, tau) is x at t - tau: tau >= 0")

    def _delays_of_wired_states(self) -> None:
        """past(v, tau) of an input v that is another operator's state is past of that state."""
        def state_of(x: sympy.Expr) -> sympy.Expr:
            while isinstance(x, sympy.Symbol) and isinstance(self.algebraic_defs.get(x.name, (None,))[0], sympy.Symbol):
                x = self.algebraic_defs[x.name][0]
            return x
        exprs = [e for e, _ in self.algebraic_defs.values()] + list(self.derivatives.values())
        wired = {d: Delayed(state_of(d.args[0]), *d.args[1:]) for e in exprs for d in e.atoms(Delayed) if d.args[2]}
        if any(d != w for d, w in wired.items()):
            self.derivatives = {n: e.xreplace(wired) for n, e in self.derivatives.items()}
            self.algebraic_defs = {n: (e.xreplace(wired), at) for n, (e, at) in self.algebraic_defs.items()}

    def _check_with_constants_put_in(self, algebraics: list[tuple[str, sympy.Expr]]) -> None:
        """Code generation puts the computed variables that are numbers into the expressions that
        read them (an input whose edges have weight 0 is 0; `y = 0`): each expression must still be
        within the limits then (1/u with u = 0 would be 1/0)."""
        constants: dict[sympy.Symbol, sympy.Expr] = {}
        definitions = [(name, expr, self.algebraic_defs[name][1]) for name, expr in algebraics]
        definitions += [(name, expr, self.derivative_locations[name]) for name, expr in self.derivatives.items()]
        for name, expr, where in definitions:
            if expr.free_symbols & constants.keys():
                expr = _with_constants(name, expr, constants, where)
            if expr.is_Number:
                constants[symbol(name)] = expr

    def _drop_unread(self) -> set[str]:
        """Drop the parameters and free inputs no equation reads: an inheritance edit can take out
        a variable's last use, and a value nothing reads would be layout that changes nothing."""
        read = set().union(*(free_names(expr) for e in self.events for expr in e.expressions()),
                           *(free_names(expr) for expr in self.derivatives.values()),
                           *(free_names(d.coefficient) for d in self.noise.values()),
                           *(free_names(expr) for expr, _ in self.algebraic_defs.values()))
        unread = {name for name in [*self.params, *self.inputs] if name not in read}
        for name in unread:
            self.params.pop(name, None)
            self.inputs.pop(name, None)
        self.populations = {label: [n for n in names if n not in unread] for label, names in self.populations.items()}
        return unread

    def _make_vectors(self, names: Iterable[str], unread: set[str]) -> None:
        """Parameters that take one value per unit (or per batch member)."""
        for name in names:
            if name in unread:
                raise TemplateFormatError(f"'{name}' is read by no equation of {self.name}; it has no value to set",
                                          None, "an inheritance edit (replace/remove) took out its last use")
            if name not in self.params:
                raise TemplateFormatError(f"'{name}' is not a parameter of {self.name}", None,
                                          did_you_mean(name, self.params))
            if self.params[name].shape == "scalar":
                self.params[name].shape = "vector"


def _with_constants(name: str, expr: sympy.Expr, constants: dict, where: Location | None) -> sympy.Expr:
    read = sorted((s for s in expr.free_symbols if s in constants), key=str)
    values = ", ".join(f"{s} = {constants[s]}" for s in read)
    with computing(f"the equation of '{name}' with {values}", where):
        expr = expr.xreplace(constants)
        ExpressionLimits().check(expr, where)
    return expr


def _input_sum(name: str, sources: list[sympy.Expr], where: Location | None) -> sympy.Expr:
    """What the edges into an input add up to, within the limits of an equation's expression
    (two edges of weight 1e308 from one source make a constant no float64 holds)."""
    total = sympy.Add(*sources)
    try:
        ExpressionLimits().check(total, where)
    except EquationSyntaxError as error:
        raise WiringError(f"the edges into '{name}': {error.message}", where, error.hint) from None
    return total


def _declared(op: OperatorTemplate, equations: list[Equation]) -> dict[str, VariableSpec]:
    """The operator's variables, and those its equations define without a declaration: an
    equation defines its variable, as variable(0.0) (a state starting at 0, or an intermediate)."""
    variables = dict(op.variables)
    for eq in equations:
        if eq.target not in variables:
            variables[eq.target] = VariableSpec(eq.target, "variable", 0.0, eq.location())
    return variables


def _without_noise(eq: Equation, rhs: sympy.Expr) -> sympy.Expr:
    """The right-hand side of an algebraic equation, where white noise has no meaning."""
    if NOISE in rhs.free_symbols:
        raise NoisePlacementError(f"white noise 'xi' can only stand in a differential equation, not in the "
                                  f"equation of '{eq.target}'", eq.location(NOISE.name),
                                  "put it into the equation of the state it drives, e.g. x' = -x/tau + sigma*xi")
    return rhs


def _check_variable_names(op: OperatorTemplate) -> None:
    for var in op.variables.values():
        if var.name in RESERVED:  # names equations give their own meaning
            what = {TIME.name: "time", NOISE.name: "white noise"}.get(var.name) or \
                (f"the constant {var.name}" if var.name in CONSTANTS else "a function")
            raise InvalidNameError(f"'{var.name}' is built in ({what}); a variable cannot be named '{var.name}'",
                                   var.location, "choose another name")


def _dependency_order(defs: dict[str, tuple[sympy.Expr, Location | None]]) -> list[tuple[str, sympy.Expr]]:
    """Topological order of algebraic definitions; a cycle is an error naming its variables."""
    order: list[tuple[str, sympy.Expr]] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            raise AlgebraicCycleError("algebraic cycle: " + " -> ".join(cycle), defs[name][1],
                                      "break the cycle by making one of these variables a state (an ODE)")
        visiting.append(name)
        expr = defs[name][0]
        for dep in sorted(s.name for s in expr.free_symbols):
            if dep in defs:
                visit(dep)
        visiting.pop()
        done.add(name)
        order.append((name, expr))

    for name in defs:
        visit(name)
    return order


def build_system(template: Template, connections: Iterable[Connection] = (), name: str | None = None,
                 vector_params: Iterable[str] = ()) -> System:
    """The System of a node, an operator or a circuit, plus extra connections (e.g. W @ r)."""
    if isinstance(template, EdgeTemplate):
        raise TemplateFormatError(f"'{template.name}' is an edge template; it runs as part of a circuit's edges",
                                  template.location, f"use it in a circuit: edges: [[a/op/x, b/op/y, {template.name}, "
                                  "{weight: 1.0}]]")
    return build_network({"": template}, connections, name or template.path, template.description, vector_params)


def _circuit_parts(circuit: CircuitTemplate, prefix: str) -> tuple[dict[str, NodeTemplate],
                                                                     list[tuple[str, EdgeSpec]]]:
    """A circuit's nodes and edges with those of the circuits inside it, labels and paths
    prefixed by where each circuit sits (c1/p1/op/var); each edge comes with that prefix."""
    nodes = {prefix + label: node for label, node in circuit.nodes.items()}
    edges = []
    for label, inner in circuit.circuits.items():
        inner_nodes, inner_edges = _circuit_parts(inner, f"{prefix}{label}/")
        nodes.update(inner_nodes)
        edges += inner_edges
    for edge in circuit.edges:
        bindings = {var: path if path == "source" else prefix + path for var, path in edge.bindings.items()}
        edges.append((prefix, dataclasses.replace(edge, source=prefix + edge.source, target=prefix + edge.target,
                                                  bindings=bindings)))
    return nodes, edges


def _edge_connections(builder: _Builder, prefix: str, edge: EdgeSpec) -> list[Connection]:
    """An edge as connections; an edge with operators first adds them as a population of its own
    (one unit per connection, labelled by its template) that reads the source and feeds the target."""
    if edge.template is None:
        return [Connection(edge.source, edge.target, edge.weight, edge.location, edge.delay, edge.spread)]
    label = _unique_label(prefix + edge.template.name, set(builder.populations))
    uses = [OperatorUse(use.operator, {**use.overrides, **edge.overrides.get(use.operator.name, {})})
            for use in edge.template.operators]
    builder.add_population(label, dataclasses.replace(edge.template, operators=uses))
    free_inputs, output = _edge_ends(edge)
    bindings = edge.bindings or {free_inputs[0]: "source"}
    reads = [Connection(edge.source if path == "source" else path, f"{label}/{var}", 1.0, edge.location)
             for var, path in bindings.items()]
    # the delay is the edge operators' output's, on its way to the target (as in PyRates)
    return reads + [Connection(f"{label}/{output}", edge.target, edge.weight, edge.location, edge.delay, edge.spread)]


def _unique_label(name: str, labels: set[str]) -> str:
    label, count = name, 1
    while label in labels:
        count += 1
        label = f"{name}_{count}"
    return label


def _edge_ends(edge: EdgeSpec) -> tuple[list[str], str]:
    """The inputs of an edge's operators that no other of its operators feeds ("op/var"), and its
    one output that no other of them reads: what the edge reads and what it passes on."""
    operators = [use.operator for use in edge.template.operators]
    outputs = {op.name: {v.name for v in op.variables.values() if v.kind == "output"} for op in operators}
    inputs = {op.name: {v.name for v in op.variables.values() if v.kind == "input"} for op in operators}
    free = [f"{op}/{var}" for op, names in inputs.items() for var in sorted(names)
            if not any(var in out for other, out in outputs.items() if other != op)]
    ends = [f"{op}/{var}" for op, names in outputs.items() for var in sorted(names)
            if not any(var in read for other, read in inputs.items() if other != op)]
    name = edge.template.name
    if len(ends) != 1:
        raise WiringError(f"edge template '{name}' must have one output that none of its operators reads, "
                          f"found {len(ends)}" + (f": {', '.join(ends)}" if ends else ""), edge.location,
                          "the edge passes that output, times the weight, to the target")
    if not edge.bindings and len(free) != 1:
        raise WiringError(f"edge template '{name}' has {len(free)} inputs that could read the source"
                          + (f" ({', '.join(free)})" if free else ""), edge.location,
                          f"say which reads it: {{{name}/op/var: source}}" if free else
                          "declare the variable that reads the source input(0.0)")
    return free, ends[0]


def build_network(populations: dict[str, Template], connections: Iterable[Connection], name: str = "network",
                  description: str = "", vector_params: Iterable[str] = ()) -> System:
    """The one System of a whole network: labelled populations (a circuit: one population per
    node, labelled "label/node") and the connections between them."""
    builder = _Builder(name, description)
    internal: list[Connection] = []
    for label, template in populations.items():
        internal += _add_template(builder, label, template)
    raise_all(builder.errors)
    for connection in internal + list(connections):
        builder.connect(connection)
    return builder.finish(vector_params)


def _add_template(builder: _Builder, label: str, template: Template) -> list[Connection]:
    """Add a node or operator as one population, a circuit as one per node; returns the circuit's
    own edges (paths prefixed with the label) to connect once every population is in."""
    if not isinstance(template, CircuitTemplate):
        builder.add_population(label or None, template)
        return []
    nodes, edges = _circuit_parts(template, f"{label}/" if label else "")
    for node_label, node in nodes.items():
        builder.add_population(node_label, node)
    return [c for prefix, edge in edges for c in _edge_connections(builder, prefix, edge)]
