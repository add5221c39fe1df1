"""The compiled CPU backend: the step program printed as one numba kernel per chunk of steps.

The generated module is the NumPy module (layout, checks, rhs, algebraics, the same chunking,
input windows, drives and random stream) whose inner loop over a chunk's steps is one
`@numba.njit` function, `_steps`. Inside it every run of consecutive element-wise statements
of one population is one loop over (batch member, unit): each value a local float, stored into
an array only where a later loop, a coupling or a reduction reads it. Couplings are BLAS calls
(np.dot: gemv for one member, gemm for several); mean()/sum() over a population are loops of
their own between the element-wise loops.

The kernel runs the members b0..b1 of the batch: threads= splits the batch between threads
(the kernel releases the GIL), each member computed alike whatever the split.

Delays (step.py: Remember, Recall) keep NumPy's histories, arrays (length, members, n) that the
kernel writes in place at each step's start and reads at each stage's time by NumPy's rule; a
delay of one number for all units finds its two history rows once, before the loop. A model
with complex variables computes in complex128 (ComplexElementPrinter: cmath's functions).
"""
from __future__ import annotations

from dataclasses import replace

import sympy

from ...equations import TIME, PopMean, PopSum, symbol
from ...equations.functions import Angle, ComplexAbs, Exprel, Imag, Real
from ...errors import UnsupportedFeatureError
from ..plan import DT, delayed_reads
from ..printers import SCALAR_HELPERS, ScalarPrinter
from ..templating import literal
from ..step import (OBSERVE, Check, Combine, Commit, Emit, Evaluate, Noise, Product, Rate, Recall, Record, Remember,
                    Reset, Stage, Value, make_observation)
from ..numpy.arrays import NumPyModule
from .functions import VECTOR_FUNCTIONS, helper_texts

TEMPLATES = ("numpy/module.py.j2", "numpy/run_helpers.py.j2", "numba/run.py.j2")


class ElementPrinter(ScalarPrinter):
    """One unit's value of an expression, as numba compiles it (`math` on floats)."""

    def _print_PopMean(self, expr) -> str:  # (replaced by a reduction's value before printing)
        raise UnsupportedFeatureError("a reduction inside a reduction's argument on the compiled backend")

    _print_PopSum = _print_PopMean

    def _print_tanh(self, expr) -> str:  # LLVM vectorizes a loop of these helpers, not one of libm's calls
        return f"{VECTOR_FUNCTIONS[type(expr)]}({self._print(expr.args[0])})"

    _print_exp = _print_tanh


# cmath's functions (numba compiles them for complex128); any other function of a complex model is refused
CMATH = frozenset({"exp", "log", "log10", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
                   "asinh", "acosh", "atanh"})


# what orders its arguments, so that numba refuses complex ones
ORDERING = (sympy.core.relational.Relational, sympy.Min, sympy.Max, sympy.Heaviside, sympy.sign, sympy.atan2, Exprel)


class ComplexElementPrinter(ElementPrinter):
    """One unit's value of a model with complex variables, where every value of the kernel is a
    complex128 but time: cmath for functions, attributes for the parts of a complex number.
    Orderings exist for real values only (numba, unlike NumPy, orders no complex numbers): a
    comparison, min, max, heaviside or sign of anything else is refused by name."""

    def _module_format(self, fqn: str, register: bool = True) -> str:
        name = super()._module_format(fqn, register)
        function = name.partition("math.")[2]
        if not function or function in ("pi", "e", "inf", "nan"):  # (constants: real numbers)
            return name
        if function not in CMATH:
            raise UnsupportedFeatureError(f"the function '{function}' of complex values on the compiled backend "
                                          "(numba has no complex version of it)", None, "use backend='numpy'")
        return "c" + name

    def _print_Pow(self, expr, rational=False) -> str:
        base, exponent = expr.as_base_exp()
        if exponent in (sympy.Rational(1, 2), -sympy.Rational(1, 2)):
            root = f"cmath.sqrt({self._print(base)})"
            return root if exponent > 0 else f"1.0/{root}"
        if exponent.is_Integer:
            return super()._print_Pow(expr, rational=rational)
        power = sympy.printing.precedence.PRECEDENCE["Pow"]
        return f"{self.parenthesize(base, power)}**{self.parenthesize(exponent, power)}"

    _print_tanh = ScalarPrinter._print_tanh  # (cmath's: functions.py's helpers are for real floats)
    _print_exp = ScalarPrinter._print_exp

    def _print_Conj(self, expr) -> str:
        return f"({self._print(expr.args[0])}).conjugate()"

    def _print_Real(self, expr) -> str:
        return f"({self._print(expr.args[0])}).real"

    def _print_Imag(self, expr) -> str:
        return f"({self._print(expr.args[0])}).imag"

    def _print_Angle(self, expr) -> str:
        return f"cmath.phase({self._print(expr.args[0])})"

    def _print_ComplexAbs(self, expr) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _real(self, expr) -> bool:
        """Whether a value is a real float in the kernel: a real number, time, dt, a part or the
        modulus of a complex value, and sums, products and whole powers of those."""
        if isinstance(expr, (Real, Imag, Angle, ComplexAbs, sympy.Abs)):
            return True
        if isinstance(expr, sympy.Symbol):
            return expr.name in (TIME.name, DT.name)
        if expr.is_Number:
            return bool(expr.is_real)
        if isinstance(expr, sympy.Pow):
            return self._real(expr.base) and expr.exp.is_Integer
        return isinstance(expr, (sympy.Add, sympy.Mul)) and all(self._real(a) for a in expr.args)

    def _ordered(self, expr, args) -> None:
        if not all(self._real(a) for a in args):
            raise UnsupportedFeatureError(f"'{expr}' needs real values on the compiled backend (numba orders no "
                                          "complex numbers)", None, "apply it to real(z), imag(z) or absv(z), or "
                                          "use backend='numpy'")

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, ORDERING):  # (Heaviside orders its first argument only)
            self._ordered(expr, expr.args[:1] if isinstance(expr, sympy.Heaviside) else expr.args)
        return super()._print(expr, **kwargs)


class Loop:
    """Consecutive element-wise statements of one population: one loop over its units."""

    def __init__(self, population: str):
        self.population = population
        self.items: list[tuple[object, dict]] = []   # (statement, its reductions' symbols)
        self.defined: set[Value] = set()
        self.prelude: list[str] = []  # lines before the loop (the history rows a delay reads)


class NumbaModule(NumPyModule):
    """Identifiers of the NumPy module, and the lines of the numba kernel `_steps`."""

    templates = TEMPLATES

    def __init__(self, program):
        # the kernel takes each weight matrix as given and a coupling's scale apart, applied where a
        # loop reads the product (no scale * W copy, no W.T copy: BLAS reads W transposed)
        self._refuse(program)
        super().__init__(program)
        # (buffer, "mean" | "sum", the reduction, the population it sums over, the statement reading it)
        self.reductions: list[tuple[str, str, sympy.Expr, str, object]] = []
        self.namer_reverse = {ident: name for name, ident in self.names.items()}
        self.algebraic_names = {n for n, _ in self.system.algebraics}
        self.delayed = {d.name: d for d in self.plan.delays}
        self.observation = self._observation()
        self.blocks = self._blocks(self.program.statements)
        self.observe_from = len(self.blocks)  # the blocks from here on compute the recorded algebraics
        self.observed_population = self._observed_populations()
        self.blocks += self._blocks(self.observation.statements)
        self.stored = self._stored()

    @staticmethod
    def _refuse(program) -> None:
        for s in program.statements:
            if not isinstance(s, (Stage, Combine, Evaluate, Product, Rate, Commit, Record, Noise, Check, Emit, Reset,
                                  Remember, Recall)):
                raise UnsupportedFeatureError(f"the compiled backend has no step statement {type(s).__name__}", None,
                                              "use backend='numpy'")
        for c in program.plan.couplings:
            if not isinstance(c.source, sympy.Symbol):
                raise UnsupportedFeatureError(f"coupling '{c.name}': its argument is no variable (compiled backend)")

    # -- what each value is --------------------------------------------------------------

    def _observed_populations(self) -> dict[str, str]:
        """The population of each value of the observation: an algebraic's own; a product's
        argument that of what it reads, a product that of the algebraic that reads it."""
        out = {}
        statements = self.observation.statements
        for s in statements:
            if isinstance(s, Recall):
                out[s.target.name] = self.population(s.target)
            if isinstance(s, Evaluate):
                owners = [self.population_of[x.name] for x in sorted(s.expr.free_symbols, key=str)
                          if x.name in self.population_of and x.name not in self.scalars] + \
                    [out[x.name] for x in s.expr.free_symbols if x.name in out]
                out[s.target.name] = self.population_of.get(s.target.name) or (owners[0] if owners else "")
        for s in statements:
            if isinstance(s, Product):
                readers = [e.target.name for e in statements if isinstance(e, Evaluate) and
                           s.target.name in {x.name for x in e.expr.free_symbols}]
                out[s.target.name] = out[readers[0]]
        return out

    def population(self, v: Value) -> str:
        """The population whose units a value has."""
        if v.role == "observed":
            return self.observed_population[v.name]
        if v.role == "delayed":  # the units of the delayed variable
            return self.population_of[self.source_of(self.delayed[v.name])]
        if v.role == "product":
            owner = self.population_of.get(v.name)
            if owner is None:
                raise UnsupportedFeatureError(f"coupling '{v.name}' has no population (compiled backend)")
            return owner
        return self.population_of[v.name]

    def statement_population(self, s) -> str:
        if isinstance(s, (Check, Reset)):
            return self.population_of[s.event]
        if isinstance(s, (Commit, Record)):
            return self.population_of[s.state]
        if isinstance(s, Remember):
            return self.population_of[s.history.source]
        return self.population(s.target)

    def buffer(self, v: Value) -> str:
        """The array of a value (batch members of this call, units); a state's stage-0 value is the
        kernel's own copy of the state."""
        if v.role == "state" and v.stage == 0:
            return self.derived("*_buf", v.name)
        if v.role == "noise" and self.noise_per_chunk(v.name):
            raise ValueError("a chunk's g*dW has no buffer")
        return self.derived("a_*", self.value(v).replace("[i]", ""))

    def local(self, v: Value) -> str:
        return self.derived("l_*", self.value(v).replace("[i]", ""))

    def width(self, population: str) -> str:
        return self.derived("n_*", "pop" + population.replace("/", "_")) if population else self.derived("n_*", "pop")

    def populations(self) -> list[tuple[str, str]]:
        labels = sorted(set(self.population_of.values()))
        return [(label, self.width(label)) for label in labels]

    # -- arguments of the kernel --------------------------------------------------------

    def read_names(self) -> set[str]:
        """IR names the kernel reads: the step's, the couplings' and the recorded algebraics'."""
        reads = self.program.reads() | self.observation_reads()
        for c in self.plan.couplings:
            reads |= {x.name for x in c.source.free_symbols}
        return reads

    def run_params(self) -> list[tuple[str, str]]:
        """NumPy's run() parameters and those only the recorded algebraics read."""
        used = {n for n, _ in super().run_params()} | self.observation_reads()
        return [(n, self.ident(n)) for n in self.system.params if n in used]

    def observation_reads(self) -> set[str]:
        return {x.name for s in self.observation.statements if isinstance(s, Evaluate) for x in s.expr.free_symbols}

    def param_args(self) -> list[tuple[str, str, bool]]:
        """(identifier, population, per unit) of the parameters and invariants the steps read
        (weight matrices aside: the couplings' prepared matrices are arguments of their own)."""
        reads = self.read_names()
        names = [n for n, p in self.system.params.items() if p.shape != "matrix"] + [n for n, _ in self.plan.hoisted]
        return [(self.ident(n), self._owner(n), n not in self.scalars) for n in names if n in reads]

    def _owner(self, name: str) -> str:
        if name in self.population_of:
            return self.population_of[name]
        expr = dict(self.plan.hoisted).get(name)
        owners = {self.population_of[x.name] for x in (expr.free_symbols if expr is not None else ())
                  if x.name in self.population_of}
        return owners.pop() if owners else next(iter(sorted(set(self.population_of.values()))))

    def input_args(self) -> list[tuple[str, str, str]]:
        """(window identifier, input, population) of the inputs the steps read."""
        reads = self.program.reads() | self.observation_reads()
        return [(self.derived("*_w", n), n, self.population_of[n]) for n in self.system.inputs
                if n in reads and n not in self.system.emitted]

    def drive_args(self) -> list[tuple[str, str]]:
        return [(self.derived("drive_*", s.name), s.name) for s in self.plan.states if s.drive != 0]

    def noise_args(self) -> list[tuple[str, str]]:
        return [(self.derived("dW_*", s.name), s.name) for s in self.plan.noise]

    def matrix_args(self) -> list[tuple[str, str]]:
        """(argument, matrix parameter) of every weight matrix the steps or the recorded algebraics apply."""
        matrices = {c.matrix for c in self.plan.couplings} | \
            {s.coupling.matrix for s in self.observation.statements if isinstance(s, Product)}
        return [(self.derived("mat_*", n), self.ident(n)) for n in sorted(matrices)]

    def scale_args(self) -> list[tuple[str, object]]:
        """(argument, coupling) of each coupling whose product is scale * (W @ x)."""
        return [(self.derived("scale_*", c.name), c) for c in self.plan.couplings if c.scale != 1]

    def product_scale(self, v: Value) -> str | None:
        """The scale argument a product of the step is multiplied by where it is read (None: 1, or
        a product of the recorded algebraics, whose matrices apply unscaled)."""
        if v.role != "product":
            return None
        return next((arg for arg, c in self.scale_args() if c.name == v.name), None)

    def algebraic_records(self) -> list[tuple[str, str]]:
        """(algebraic, its record argument) of every algebraic the kernel can record."""
        return [(n, self.derived("rec_*", n)) for n, _ in self.system.algebraics]

    def noise_with_drive(self) -> list[str]:
        return []  # the kernel adds each step's drive itself (no chunk-wide sum to save)

    def full(self, state: str) -> str:
        """The kernel's argument of a state: every member's values (members, n)."""
        return self.derived("all_*", state)

    def record_names(self) -> list[str]:
        return list(self.system.states) + [e.name for e in self.system.events] + [n for n, _ in self.system.algebraics]

    def kernel_args(self) -> list[str]:
        states = [self.full(n) for n in self.system.states]
        records = [self.derived("rec_*", n) for n in self.record_names()]
        return (["b0", "b1", "start", "nsteps", "sampling_steps", "t0", "dt", "observe"] +
                [w for _, w in self.populations()] + states + [i for i, _, _ in self.param_args()] +
                self.matrix_kernel_args() + [w for w, _, _ in self.input_args()] +
                [d for d, _ in self.drive_args()] + [d for d, _ in self.noise_args()] + records +
                self.history_args())

    def matrix_kernel_args(self) -> list[str]:
        return [w for w, _ in self.matrix_args()] + [s for s, _ in self.scale_args()]

    # -- blocks: element-wise loops, products, reductions --------------------------------

    def _blocks(self, statements) -> list:
        blocks: list = []
        for s in statements:
            if isinstance(s, Stage):
                blocks.append(s)
                continue
            if isinstance(s, Product):
                blocks.append(s)
                continue
            reductions = self._reductions(s)
            population = self.statement_population(s)
            if reductions or not blocks or not isinstance(blocks[-1], Loop) or blocks[-1].population != population:
                blocks += [r for r in reductions]
                blocks.append(Loop(population))
            blocks[-1].items.append((s, {sym: name for sym, name in ((r[2], r[0]) for r in reductions)}))
        return blocks

    def _reductions(self, s) -> list:
        """The reductions (mean()/sum() over a population) a statement's expression reads, each
        computed by a loop of its own before the statement's loop."""
        exprs = self._expressions(s)
        found = []
        for expr in exprs:
            for node in sympy.postorder_traversal(expr):
                if isinstance(node, (PopMean, PopSum)) and not any(node == f[2] for f in found):
                    arg = node.args[0]
                    if arg.atoms(PopMean, PopSum):
                        raise UnsupportedFeatureError("a reduction inside a reduction's argument on the compiled backend")
                    owners = {self.population_of[x.name] for x in arg.free_symbols if x.name in self.population_of
                              and x.name not in self.scalars}
                    if not owners:
                        raise UnsupportedFeatureError(f"{node}: a reduction of a value given once for every unit "
                                                      "(compiled backend)")
                    name = self.namer.fresh(f"red_{len(self.reductions)}")
                    entry = (name, "mean" if isinstance(node, PopMean) else "sum", node, owners.pop(), s)
                    self.reductions.append(entry)
                    found.append(entry)
        return found

    @staticmethod
    def _expressions(s) -> list:
        if isinstance(s, Evaluate):
            return [s.expr]
        if isinstance(s, Rate):
            return [s.linear]
        if isinstance(s, Noise):
            return [s.coefficient] if s.coefficient is not None else []
        if isinstance(s, Check):
            return [s.condition]
        if isinstance(s, Reset):
            return [v for _, v in s.assignments] + ([s.duration] if s.duration is not None else [])
        if isinstance(s, Remember):
            return [s.history.value]
        return []  # (a Recall reads its history: no value of the step)

    def _stored(self) -> set[Value]:
        """Values some block reads other than the loop that computes them: they get an array."""
        owner: dict[Value, int] = {}
        stored: set[Value] = set()
        for index, block in enumerate(self.blocks):
            for value in self._block_reads(block):
                if owner.get(value, index) != index:
                    stored.add(value)
            if isinstance(block, Loop):
                for s, _ in block.items:
                    for v in self._assigns(s):
                        owner.setdefault(v, index)
            elif isinstance(block, Product):
                owner[block.target] = index
                stored.add(block.target)
        return stored

    def _assigns(self, s) -> list[Value]:
        if isinstance(s, Reset):
            return [Value(n, "new") for n, _ in s.assignments] + ([Value(s.clock, "new")] if s.clock else [])
        if isinstance(s, Check):
            return [Value(s.event, "fired"), Value(s.event, "held")]
        target = getattr(s, "target", None)
        return [target] if target is not None else []

    def _block_reads(self, block) -> set[Value]:
        if isinstance(block, Stage):
            return set()
        if isinstance(block, Product):
            bindings = self._bindings_of(block)
            return {bindings[x.name] for x in block.coupling.source.free_symbols if x.name in bindings}
        if isinstance(block, tuple):  # a reduction
            s = block[4]
            bindings = self._bindings_of(s)
            return {bindings[x.name] for x in block[2].free_symbols if x.name in bindings}
        reads = set()
        for s, _ in block.items:
            reads |= self._statement_reads(s)
        return reads

    def _bindings_of(self, s) -> dict[str, Value]:
        if isinstance(s, Reset):
            return self.program.reset_bindings()
        if getattr(s, "stage", 0) == OBSERVE:
            return self.observation_bindings()
        return self.program.bindings(getattr(s, "stage", 0))

    def observation_bindings(self) -> dict[str, Value]:
        """The observation reads the committed states (the states' own arrays), its own values and
        t + dt; a spike train is 0 there, as in algebraics()."""
        names = {n: Value(n, "state", 0) for n in self.system.states}
        names.update({s.target.name: s.target for s in self.observation.statements})
        names[TIME.name] = Value(TIME.name, "time", OBSERVE)
        return names

    def value(self, v: Value) -> str:
        if v.role == "observed":
            return self.derived("obs_*", v.name)
        if v.role == "time" and v.stage == OBSERVE:
            return "t_next"
        return super().value(v)

    def _statement_reads(self, s) -> set[Value]:
        bindings = self._bindings_of(s)
        reads = {bindings[x.name] for e in self._expressions(s) for x in e.free_symbols if x.name in bindings}
        if isinstance(s, Combine):
            reads |= {s.base} | {v for _, v in s.terms + s.noise}
        elif isinstance(s, Rate):
            reads |= {s.state} | set(s.products) | ({s.rest} if s.rest else set()) | {v for _, v in s.noise}
        elif isinstance(s, (Commit, Record)):
            reads.add(s.value)
        elif isinstance(s, Emit):
            reads.add(Value(s.event, "fired"))
        elif isinstance(s, Reset):
            reads |= {Value(s.event, "fired")} | ({Value(s.event, "held")} if s.held else set())
            reads |= {Value(n, "new") for n, _ in s.assignments} | ({Value(s.clock, "new")} if s.clock else set())
        elif isinstance(s, Check) and s.refractory:
            reads.add(Value(s.refractory, "state", 0))
        return {v for v in reads if not (v.role == "noise" and self.noise_per_chunk(v.name))}

    # -- printing ------------------------------------------------------------------------

    def buffers(self) -> list[tuple[str, str, str]]:
        """(array, population width, dtype) of every stored value but the states."""
        out = []
        for v in sorted(self.stored, key=lambda v: self.buffer(v)):
            if v.role == "state" and v.stage == 0:
                continue
            kind = "np.bool_" if v.role in ("fired", "held") else "DTYPE"
            product = v.role == "product" or v.role == "observed" and v.name not in self.algebraic_names and \
                any(isinstance(s, Product) and s.target == v for s in self.observation.statements)
            width = self.coupling_width(v) if product else self.width(self.population(v))
            out.append((self.buffer(v), width, kind))
        return out

    def coupling_width(self, v: Value) -> str:
        product = next(s for s in self.program.statements + self.observation.statements
                       if isinstance(s, Product) and s.target == v)
        return f"{self.derived('mat_*', product.coupling.matrix)}.shape[0]"

    def reduction_buffers(self) -> list[str]:
        return [name for name, *_ in self.reductions]

    def element(self, v: Value, loop: Loop) -> str:
        """How a loop reads a value of one unit: its local float, or its array."""
        if v in loop.defined:
            return self.local(v)
        if v.role == "noise" and self.noise_per_chunk(v.name):
            return self.row_element(self.derived('dW_*', v.name))
        if v.role == "time":
            return self.value(v)
        if (scale := self.product_scale(v)) is not None:
            return f"({scale} * {self.buffer(v)}[m, j])"
        return f"{self.buffer(v)}[m, j]"

    @staticmethod
    def member_row(array: str, axis: int) -> str:
        """The row of member b in an argument made by _rows: one row per member, or one for all
        members where the value is the same for each (a sweep's inputs and drives: no copy per member)."""
        return f"min(b, {array}.shape[{axis}] - 1)"

    def row_element(self, array: str) -> str:
        """Step i's value of unit j of member b in a chunk's term (steps, members or 1, n)."""
        return f"{array}[i, {self.member_row(array, 1)}, j]"

    def names_for(self, s, loop: Loop, reductions: dict) -> dict[str, str]:
        names = dict(self.names)
        for ident, _, per_unit in self.param_args():
            names[self.namer_reverse[ident]] = f"{ident}[{self.member_row(ident, 0)}, {'j' if per_unit else '0'}]"
        for w, name, _ in self.input_args():
            names[name] = self.row_element(w)
        names.update({name: self.element(v, loop) for name, v in self._bindings_of(s).items()})
        names[TIME.name] = self.value(self._bindings_of(s)[TIME.name])
        if getattr(s, "stage", 0) == OBSERVE:
            names.update({n: "0.0" for n in self.system.emitted})
        names.update({str(sym): f"{red}[m]" for sym, red in reductions.items()})
        return names

    def print_expr(self, expr, names: dict[str, str], reductions: dict) -> str:
        expr = expr.xreplace({node: sympy.Symbol(red) for node, red in reductions.items()})
        names = {**names, **{red: f"{red}[m]" for red in reductions.values()}}
        return self.element_printer(names).doprint(expr)

    def kernel_lines(self) -> list[str]:
        """The body of one step inside `for i in range(nsteps)`: the step, its records, and the
        recorded algebraics computed from the committed states."""
        lines = [line for block in self.blocks[:self.observe_from] for line in self.block_lines(block)]
        lines += self.record_lines()
        observation = [line for block in self.blocks[self.observe_from:] for line in self.block_lines(block)]
        if observation:
            lines += ["if recorded and observe:", "    t_next = t0 + (start + i + 1) * dt"]
            lines += [f"    {line}" for line in observation]
        return lines

    def record_lines(self) -> list[str]:
        """The committed new states into this step's record rows (a Record reads the new value,
        which its Commit has put into the state's array)."""
        lines = []
        for s in self.program.statements:
            if isinstance(s, Record):
                rec, state = self.derived("rec_*", s.state), self.buffer(Value(s.state, "state"))
                lines += [f"if recorded and {rec}.shape[0]:", f"    {rec}[row, b0:b1] = {state}"]
        return lines

    def block_lines(self, block) -> list[str]:
        if isinstance(block, Stage):
            if not self.program.stage_uses_time(block.k):
                return []
            return [f"{self.value(Value(TIME.name, 'time', block.k))} = t + {float(block.time)!r} * dt"]
        if isinstance(block, Product):
            return self.product_lines(block)
        if isinstance(block, tuple):
            return self.reduction_lines(block)
        return self.loop_lines(block)

    def product_lines(self, s: Product) -> list[str]:
        source = self._bindings_of(s).get(s.coupling.source.name)
        if source is None:
            raise UnsupportedFeatureError(f"coupling '{s.coupling.name}' of '{s.coupling.source}', which is no value "
                                          "of the step (compiled backend)")
        x, target = self.buffer(source), self.buffer(s.target)
        w = self.derived("mat_*", s.coupling.matrix)
        return ["if bs == 1:  # one member: gemv",
                f"    np.dot({w}, {x}[0], {target}[0])",
                "else:  # the members at once: gemm (x @ W.T, BLAS reading W transposed)",
                f"    np.dot({x}, {w}.T, {target})"]

    def reduction_lines(self, r) -> list[str]:
        name, kind, node, population, s = r
        loop = Loop(population)
        names = self.names_for(s, loop, {})
        arg = self.element_printer(names).doprint(node.args[0])
        width = self.width(population)
        lines = ["for m in range(bs):", "    b = b0 + m", "    acc = 0.0", f"    for j in range({width}):",
                 f"        acc += {arg}"]
        return lines + [f"    {name}[m] = acc" + (f" / {width}" if kind == "mean" else "")]

    def loop_lines(self, loop: Loop) -> list[str]:
        body = []
        for s, reductions in loop.items:
            body += self.element_lines(s, loop, reductions)
        if not body:  # (records only: written after the step)
            return []
        width = self.width(loop.population)
        return loop.prelude + ["for m in range(bs):", "    b = b0 + m", f"    for j in range({width}):"] + \
            [f"        {line}" for line in body]

    def assign(self, v: Value, code: str, loop: Loop) -> list[str]:
        loop.defined.add(v)
        lines = [f"{self.local(v)} = {code}"]
        if v in self.stored:
            lines.append(f"{self.buffer(v)}[m, j] = {self.local(v)}")
        return lines

    def element_lines(self, s, loop: Loop, reductions: dict) -> list[str]:
        if isinstance(s, Evaluate):
            lines = self.assign(s.target, self.print_expr(s.expr, self.names_for(s, loop, reductions), reductions), loop)
            if s.stage == OBSERVE and s.target.name in self.algebraic_names:
                rec = self.derived("rec_*", s.target.name)
                lines += [f"if {rec}.shape[0]:", f"    {rec}[row, b, j] = {self.local(s.target)}"]
            return lines
        if isinstance(s, Combine):
            return self.assign(s.target, self.combine_code(s, loop), loop)
        if isinstance(s, Rate):
            return self.assign(s.target, self.rate_code(s, loop, reductions), loop)
        if isinstance(s, Noise):
            if s.coefficient is None:
                return []
            g = self.print_expr(s.coefficient, self.names_for(s, loop, reductions), reductions)
            return self.assign(s.target, f"({g}) * {self.row_element(self.derived('dW_*', s.target.name))}", loop)
        if isinstance(s, Commit):
            return [f"{self.buffer(Value(s.state, 'state'))}[m, j] = {self.element(s.value, loop)}"]
        if isinstance(s, Record):
            return []  # after the step, a row at a time (record_lines): no branch in the loop
        if isinstance(s, Check):
            return self.check_lines(s, loop, reductions)
        if isinstance(s, Emit):
            fired = self.element(Value(s.event, "fired"), loop)
            return self.assign(s.target, f"{fired} / dt", loop)
        if isinstance(s, Remember):
            return self.remember_lines(s, loop, reductions)
        if isinstance(s, Recall):
            return self.recall_lines(s, loop)
        return self.reset_lines(s, loop, reductions)

    def combine_code(self, s: Combine, loop: Loop) -> str:
        base = self.element(s.base, loop)
        noise = [self.element(v, loop) if c == 1 else f"{float(c)!r} * {self.element(v, loop)}" for c, v in s.noise]
        if s.target.role == "new":  # NumPy's order: x + (b_1 dt) k_1 + ... + noise
            terms = [base] + [f"({float(b)!r} * dt) * {self.element(v, loop)}" for b, v in s.terms] + noise
        else:
            terms = [f"{self.element(v, loop)} * ({float(a)!r} * dt)" for a, v in s.terms[:1]] + \
                [f"{float(a)!r} * dt * {self.element(v, loop)}" for a, v in s.terms[1:]] + [base] + noise
        return " + ".join(terms)

    def rate_code(self, s: Rate, loop: Loop, reductions: dict) -> str:
        names = self.names_for(s, loop, reductions)
        x = self.element(s.state, loop)
        terms = [self.element(p, loop) for p in s.products] + ([self.element(s.rest, loop)] if s.rest else []) + \
            ([self.row_element(self.derived('drive_*', s.state.name))] if s.drive else []) + \
            [self.element(v, loop) if c == 1 else f"{float(c)!r} * {self.element(v, loop)}" for c, v in s.noise]
        if s.target.role == "new" and s.linear == 1:
            return " + ".join([x] + terms)
        if s.linear != 0:
            return " + ".join([f"{x} * ({self.print_expr(s.linear, names, reductions)})"] + terms)
        if not s.products:
            return " + ".join([f"{self.element(Value(s.state.name, 'state', 0), loop)} * 0.0"] + terms)
        return " + ".join(terms) if terms else "0.0"

    def check_lines(self, s: Check, loop: Loop, reductions: dict) -> list[str]:
        fired, held = Value(s.event, "fired"), Value(s.event, "held")
        condition = self.print_expr(s.condition, self.names_for(s, loop, reductions), reductions)
        lines = []
        if s.refractory:
            clock = self.element(Value(s.refractory, "state", 0), loop)
            lines += self.assign(held, f"{clock} > 0.5 * dt", loop)
            condition = f"({condition}) and not {self.local(held)}"
        lines += self.assign(fired, f"bool({condition})", loop)
        rec = self.derived("rec_*", s.event)
        return lines + [f"if here < {rec}.shape[0] and {self.local(fired)}:", f"    {rec}[here, b, j] += 1"]

    def reset_lines(self, s: Reset, loop: Loop, reductions: dict) -> list[str]:
        names = self.names_for(s, loop, reductions)
        fired = self.element(Value(s.event, "fired"), loop)
        where = f"{fired} or {self.element(Value(s.event, 'held'), loop)}" if s.held else fired
        values = [self.print_expr(value, names, reductions) for _, value in s.assignments]
        temporaries = [self.derived(f"*_reset_{k}", s.event) for k in range(len(values))]
        lines = [f"if {where}:"] + [f"    {t} = {v}" for t, v in zip(temporaries, values)]
        for (state, _), t in zip(s.assignments, temporaries):
            lines += [f"    {line}" for line in self.reassign(Value(state, "new"), t, loop)]
        if s.clock:
            duration = self.print_expr(s.duration, names, reductions)
            lines += [f"if {fired}:"] + [f"    {line}" for line in self.reassign(Value(s.clock, "new"), duration, loop)]
        return lines

    def reassign(self, v: Value, code: str, loop: Loop) -> list[str]:
        if v in loop.defined:
            return [f"{self.local(v)} = {code}"] + ([f"{self.buffer(v)}[m, j] = {self.local(v)}"]
                                                  if v in self.stored else [])
        return [f"{self.buffer(v)}[m, j] = {code}"]

    def element_printer(self, names: dict[str, str]) -> ElementPrinter:
        """The printer of one unit's values: complex ones (cmath) where the model has complex variables."""
        printer = ComplexElementPrinter if self.system.complex_names else ElementPrinter
        return printer(names, scalars=self.scalars)

    # -- delays: the histories as arrays of the kernel, updated in place (step.py: Remember, Recall)

    def _observation(self):
        """The step program's observation, each delayed value its algebraics read recalled at the
        record step's time t + dt (what NumPy's run() passes to algebraics() as `delayed`)."""
        observation = make_observation(self.plan)
        reads = {delayed: symbol(d.name) for delayed, d in zip(delayed_reads(self.system), self.plan.delays)}
        statements = [replace(s, expr=s.expr.xreplace(reads)) if isinstance(s, Evaluate) else s
                      for s in observation.statements]
        used = {x.name for s in statements if isinstance(s, Evaluate) for x in s.expr.free_symbols}
        observation.statements = [Recall(Value(d.name, "delayed", OBSERVE), d, OBSERVE) for d in self.plan.delays
                                  if d.name in used] + statements
        return observation

    def history_shape(self, source: str) -> str:
        """Every batch member's history (the kernel's states hold the whole batch)."""
        return f"batch + shapes[{literal(self.population_of[source])}][-1:]"

    def back(self, read, stage: int) -> str:
        """The steps back of a delay's read in a stage (OBSERVE: the record step's, at t + dt), as
        history_lines names it."""
        times = self.program.stage_times
        k = len(times) if stage == OBSERVE else stage
        return self.derived(f"*_{k + 1}", self.steps_back(read)) if stage == OBSERVE or times[k] else \
            self.steps_back(read)

    def recall_backs(self) -> list[tuple[str, str | None]]:
        """(steps back, population of the delayed variable: one float per unit; None: one float for
        all, a delay made of numbers and scalar parameters) of every read the kernel makes."""
        reads = [s for s in self.program.statements + self.observation.statements if isinstance(s, Recall)]
        return list(dict.fromkeys((self.back(s.read, s.stage), None if self.uniform(s.read) else
                                   self.population(s.target)) for s in reads))

    def uniform(self, read) -> bool:
        """Whether a delay is one number for every unit (every unit of a loop then reads the same
        history rows)."""
        return {x.name for x in read.tau.free_symbols} <= self.scalars

    def history_args(self) -> list[str]:
        """The step the run starts at in its histories, their buffers (length, members, n), and
        the steps back of each read."""
        if not self.plan.histories:
            return []
        return ["h0"] + self.history_buffers() + [back for back, _ in self.recall_backs()]

    def remember_lines(self, s: Remember, loop: Loop, reductions: dict) -> list[str]:
        buffer = self.derived("*_buf", s.history.name)
        value = self.print_expr(s.history.value, self.names_for(s, loop, reductions), reductions)
        return [f"{buffer}[hpos % {buffer}.shape[0], b, j] = {value}"]

    def recall_lines(self, s: Recall, loop: Loop) -> list[str]:
        """The delayed value of unit j: NumPy's _recall. A delay of one number for all units reads
        the same two history rows in every unit: found before the loop, which then vectorizes."""
        buffer, back = self.derived("*_buf", s.read.history), self.back(s.read, s.stage)
        if not self.uniform(s.read):
            return self.assign(s.target, f"_recalled({buffer}, hpos, {back}[j], b, j)", loop)
        later, earlier, fraction = (self.derived(f"*_{part}", back) for part in ("later", "earlier", "fraction"))
        loop.prelude += [f"{later} = (hpos - int({back})) % {buffer}.shape[0]  # the rows around the delayed time",
                         f"{earlier} = ({later} - 1) % {buffer}.shape[0]",
                         f"{fraction} = {back} - int({back})"]
        return self.assign(s.target, f"{buffer}[{later}, b, j] if {fraction} == 0.0 else (1.0 - {fraction}) * "
                                     f"{buffer}[{later}, b, j] + {fraction} * {buffer}[{earlier}, b, j]", loop)

    def per_unit_recalls(self) -> bool:
        """Whether a read has one delay per unit (the kernel calls _recalled)."""
        return any(population for _, population in self.recall_backs())

    def functions_used(self) -> set[type]:
        exprs = [e for _, e in self.system.algebraics] + list(self.system.derivatives.values()) + \
            [e for ev in self.system.events for e in ev.expressions()] + [s.diffusion for s in self.plan.states]
        return {type(node) for expr in exprs for node in sympy.preorder_traversal(expr)}

    def scalar_helpers(self) -> list[str]:
        used = self.functions_used()
        return [text for func, text in SCALAR_HELPERS.items() if func in used]

    def vector_helpers(self) -> list[str]:
        """functions.py's helpers the kernel calls (with their decorators); none for complex values (cmath)."""
        return [] if self.system.complex_names else helper_texts(self.functions_used())

