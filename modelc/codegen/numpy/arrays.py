"""The NumPy backend: the step program printed as array code (templates/numpy/).

Every value of the step gets its own buffer, kept from one step to the next: sums are built
with in-place ufuncs (`out=`), a single ufunc call writes into its own memory of the step
before, and a state's new value is written straight into the record row when the step is
recorded (no copy), otherwise into the state's own buffer.

White noise: run() draws each chunk's Wiener increments at once (_increments, one NumPy Generator
per batch member) into an array dW_x (steps, batch..., n) per noisy state; g that reads no stage
value is multiplied into it there, any other g times the row dW_x[i] is a Noise statement.

Couplings driven by spikes (plan.SpikeDriven): run() computes W @ x of a spike train from the
weights out of the units that fired (_spike_product), and carries a synaptic trace's W @ s from
step to step (in full only on a run's first step); grad() recomputes every product in full.
"""
from __future__ import annotations

import sympy

from ...equations import TIME, symbol
from ...equations.functions import Delayed
from ...ir import System
from ..layout import population_of
from ..naming import Namer
from ..plan import DT
from ..printers import NUMPY_HELPERS, NumPyPrinter
from ..plan import delayed_reads
from ..step import (Check, Combine, Commit, Emit, Evaluate, Noise, Product, Rate, Recall, Record, Remember, Reset,
                    Stage, StepProgram, Value)
from ..templating import declared_names, literal

TEMPLATES = ("numpy/module.py.j2", "numpy/run.py.j2", "numpy/run_single.py.j2")


class NumPyModule:
    """Identifiers and the lines of run() for one step program."""

    printer_class = NumPyPrinter
    helper_texts = NUMPY_HELPERS
    full_invariants = True  # array invariants expanded to their population's shape (arrays, not floats)
    step_time = "DTYPE(t0 + (start + i) * dt)"  # a NumPy number: 1/t at t = 0 is inf, as for arrays
    counts_units = True  # sum() of a value given once (a number) counts the population's units
    templates = TEMPLATES  # whose declared names no model identifier takes
    event_driven = True  # a product of a spike train from the units that fired (plan.SpikeDriven)

    def __init__(self, program: StepProgram):
        self.program = program
        self.plan = plan = program.plan
        self.system = system = plan.system
        # Generated names first: they are short and readable only if nothing took them before.
        generated = [n for n, _ in plan.hoisted] + [c.name for c in plan.couplings] + \
            [n for n, _ in plan.algebraics if n not in system.outputs]
        events = list(dict.fromkeys([e.name for e in system.events] + list(system.emitted)))
        self.namer = Namer(generated + list(system.states) + list(system.params) + list(system.inputs) +
                           [n for n, _ in system.algebraics] + events,
                           taken=frozenset().union(*(declared_names(t) for t in self.templates)))
        self.names = dict(self.namer.names)
        self.names[TIME.name] = "t"
        self.names[DT.name] = "dt"
        # algebraics() and rhs() take the delayed values as an argument (run() reads its histories)
        self.names.update({d.name: f"delayed[{literal(d.name)}]" for d in plan.delays})
        scalars = {n for n, p in system.params.items() if p.shape == "scalar"} | {TIME.name, DT.name}
        scalars |= {n for n, e in plan.hoisted if {x.name for x in e.free_symbols} <= scalars}
        self.scalars = frozenset(scalars)  # one number for every unit (no array to write into)
        self.population_of = population_of(system)
        # run() and grad() bind `shapes`: their sum() counts the units of a value given once
        self.units = self.population_of if self.counts_units else {}
        self.printer = self.printer_class(self.names, scalars=self.scalars, population_of=self.units)
        self._derived: dict[tuple, str] = {}
        self.out_buffers: list[str] = []  # filled while the step is printed; None before the loop

    # -- names --------------------------------------------------------------------------

    def ident(self, name: str) -> str:
        return self.names[name]

    def derived(self, kind: str, name: str) -> str:
        """An identifier made from another's (drive_x, rec_x, x_buf, ...), unique in the module:
        `kind` with '*' standing for the identifier of `name` (a variable, or one made before)."""
        key = (kind, name)
        if key not in self._derived:
            self._derived[key] = self.namer.fresh(kind.replace("*", self.names.get(name, name)))
        return self._derived[key]

    def value(self, v: Value) -> str:
        """The identifier of a value of the step program."""
        x, k = v.name, v.stage
        if v.role == "time":
            return "t" if self.program.stage_times[k] == 0 else self.derived(f"t_{k + 1}", TIME.name)
        if v.role == "noise":  # g*dW: a row of the chunk's array, or the stage's own buffer
            return f"{self.derived('dW_*', x)}[i]" if self.noise_per_chunk(x) else self.derived(f"noise_*_{k + 1}", x)
        if v.role == "delayed":  # (its name in self.names is algebraics()' delayed[...])
            return self.derived(f"{x}_at_{k + 1}", x)
        if v.role in ("state", "algebraic") and k == 0 or v.role in ("product", "emitted"):
            return self.ident(x)
        pattern = {"state": f"*_{k + 1}", "algebraic": f"*_{k + 1}", "rate": f"d*_{k + 1}", "rest": "inc_*",
                   "delayed": f"*_at_{k + 1}",
                   "new": "*_out", "fired": "*_fired", "held": "*_held"}[v.role]
        return self.derived(pattern, x)

    def stage_names(self, k: int) -> dict[str, str]:
        return {**self.names, **{name: self.value(v) for name, v in self.program.bindings(k).items()}}

    def code(self, expr: sympy.Expr, names: dict[str, str] | None = None) -> str:
        if names is None:
            return self.printer.doprint(expr)
        return self.printer_class(names, scalars=self.scalars, population_of=self.units).doprint(expr)

    def helpers(self) -> list[str]:
        exprs = [e for _, e in self.system.algebraics] + list(self.system.derivatives.values())
        used = {type(node) for expr in exprs for node in sympy.preorder_traversal(expr)}
        return [text for func, text in self.helper_texts.items() if func in used]

    # -- what each function binds ---------------------------------------------------------

    def bindings(self, names) -> list[tuple[str, str, str]]:
        """(identifier, argument it comes from, name) for the given states, params and inputs."""
        s = self.system
        sources = [("y", s.states), ("params", s.params), ("inputs", s.inputs)]
        return [(self.ident(n), source, n) for source, table in sources for n in table if n in names]

    def quiet_spike_trains(self, names) -> list[tuple[str, str]]:
        """(identifier, value) of the emitted inputs among names: 0 in rhs() and algebraics() (no
        events there), zeros of a state's shape of its population where there is one (W @ spike
        needs an array)."""
        out = []
        for n in self.system.emitted:
            if n in names:
                label = self.population_of.get(n)
                state = next((x for x in self.system.states if self.population_of.get(x) == label), None)
                out.append((self.ident(n), "0.0" if state is None or label is None else
                            f"np.zeros(np.shape(y[{literal(state)}]), dtype=DTYPE)"))
        return out

    def algebraics_reads(self) -> set[str]:
        return {x.name for _, e in self.system.algebraics for x in e.free_symbols}

    def rhs_reads(self) -> set[str]:
        return {x.name for e in self.system.derivatives.values() for x in e.free_symbols}

    def algebraic_reads(self, reads) -> list[tuple[str, str]]:
        return [(self.ident(n), n) for n, _ in self.system.algebraics if n in reads]

    def run_params(self) -> list[tuple[str, str]]:
        """The parameters run() reads itself: in invariants, weights, drives and the step."""
        plan = self.plan
        exprs = [e for _, e in plan.hoisted] + [c.scale for c in plan.couplings] + [s.drive for s in plan.states] + \
            [s.diffusion for s in plan.states]
        exprs += [e for c in self.spike_products() for e in (c.spikes.decay, c.spikes.gain) if e is not None]
        used = {x.name for e in exprs for x in e.free_symbols} | {c.matrix for c in plan.couplings}
        used |= self.program.reads()
        return [(n, self.ident(n)) for n in self.system.params if n in used]

    # -- rhs and algebraics (plain, unoptimised: for solvers and records) --------------

    def algebraic_lines(self) -> list[str]:
        return [f"{self.ident(n)} = {self.plain(e)}" for n, e in self.system.algebraics]

    def derivative_lines(self) -> list[tuple[str, str]]:
        return [(n, self.plain(e)) for n, e in self.system.derivatives.items()]

    def plain(self, expr: sympy.Expr) -> str:
        """For algebraics() and rhs(), which bind no `shapes`; a delayed value is delayed[name]."""
        reads = {d: symbol(r.name) for d, r in zip(delayed_reads(self.system), self.plan.delays)}
        return self.printer_class(self.names, scalars=self.scalars).doprint(expr.xreplace(reads))

    # -- delays: histories (step.py: Remember, Recall) -------------------------------------

    def reads_delayed(self, exprs) -> bool:
        return any(e.has(Delayed) for e in exprs)

    def history_lines(self) -> list[str]:
        """Before the loop: how many steps back each stage (and the record step, at t + dt) reads
        each delay, and the ring buffers: `history`'s (the run before's) or new ones, filled with
        the state's initial value (past(x, tau)) or zeros (an edge's delay)."""
        lines = []
        times = [float(c) for c in self.program.stage_times] + [1.0]
        for d in self.plan.delays:
            back = self.steps_back(d)
            lines.append(f"{back} = _steps_back({self.code(d.tau)}, dt, {literal(self.source_of(d))})")
            lines += [f"{self.derived(f'*_{k + 1}', back)} = {back} - {c!r}" for k, c in enumerate(times) if c]
        reach = {h.name: ", ".join(self.steps_back(d) for d in self.plan.delays if d.history == h.name)
                 for h in self.plan.histories}  # (a step's start reads furthest back)
        layout = ", ".join(f"{literal(self.history_key(h))}: (max(map(np.max, ({reach[h.name]},))), "
                           f"{self.history_shape(h.source)}, {self.ident(h.source) if h.before else None})"
                           for h in self.plan.histories)
        return lines + [f"h0, ({', '.join(self.history_buffers())},) = _histories(history, dt, {{{layout}}})"]

    def steps_back(self, d) -> str:
        """How many steps before a step's start its stage 0 reads the delayed value d."""
        return self.derived(f"{d.name}_back", d.name)

    def history_shape(self, source: str) -> str:
        return f"shapes[{literal(self.population_of[source])}]"

    def history_key(self, h) -> str:
        """A history's name in rec["history"]: its variable's; an edge's delay of a variable that
        past() delays too keeps a history of its own (0 before t0), named "<variable> (edge)"."""
        shared = sum(other.source == h.source for other in self.plan.histories) > 1
        return f"{h.source} (edge)" if shared and not h.before else h.source

    def history_buffers(self) -> list[str]:
        return [self.derived("*_buf", h.name) for h in self.plan.histories]

    def delays_layout(self) -> dict[str, tuple[str, str]]:
        """DELAYED of the module: {name: (delayed variable, its delay as text)}."""
        return {d.name: (self.source_of(d), str(d.tau)) for d in self.plan.delays}

    def source_of(self, d) -> str:
        return next(h.source for h in self.plan.histories if h.name == d.history)

    def history_result(self, step: str = "h0 + steps", buffers: list[str] | None = None) -> str:
        """rec["history"] (what the next run goes on from): the histories at `step`."""
        pairs = zip(self.plan.histories, buffers or self.history_buffers())
        entries = ", ".join(f"{literal(self.history_key(h))}: {buffer}" for h, buffer in pairs)
        return f'{{"dt": dt, "step": {step}, "buffers": {{{entries}}}}}'

    def record_delayed(self) -> str:
        """The delayed values at the recorded step's end (t + dt), for algebraics()."""
        k = len(self.program.stage_times)  # (history_lines: the record step's read after the stages')
        return "{" + ", ".join(f"{literal(d.name)}: _recall({self.derived('*_buf', d.history)}, hpos, "
                               f"{self.derived(f'*_{k + 1}', self.steps_back(d))})"
                               for d in self.plan.delays) + "}"

    def remember(self, s: Remember) -> list[str]:
        buffer = self.derived("*_buf", s.history.name)
        value = self.code(s.history.value, self.stage_names(0))
        return [f"{buffer}[hpos % len({buffer})] = {value}"]

    def recall(self, s: Recall) -> list[str]:
        back = self.steps_back(s.read)
        back = self.derived(f"*_{s.stage + 1}", back) if self.program.stage_times[s.stage] else back
        return [f"{self.value(s.target)} = _recall({self.derived('*_buf', s.read.history)}, hpos, {back})"]

    # -- run: once, per chunk ----------------------------------------------------------------

    def hoisted_lines(self) -> list[str]:
        """Loop invariants; one made of a single population's parameters is given that
        population's whole shape (_full), so the steps never broadcast it."""
        lines = []
        for name, expr in self.plan.hoisted:
            code = self.code(expr)
            populations = {self.population_of[s.name] for s in expr.free_symbols if s.name in self.population_of}
            if self.full_invariants and len(populations) == 1:
                code = f"_full({code}, shapes[{literal(populations.pop())}])"
            lines.append(f"{self.ident(name)} = {code}")
        return lines

    def weight_lines(self) -> list[str]:
        return [f"{self.derived('product_*', c.name)} = _product(weights={self.ident(c.matrix)}, "
                f"scale={self.code(c.scale)}, unbatched=unbatched)  "
                f"# x -> ({self.code(c.scale)}) * {self.ident(c.matrix)} @ x"
                for c in self.plan.couplings] + \
            [f"{self.derived('spikes_*', c.name)} = _spike_product(weights={self.ident(c.matrix)}, "
             f"scale={self.code(c.scale)})  # the same product from the units that fired"
             for c in self.spike_products()]

    def spike_products(self) -> list:
        """The couplings run() computes from the units that fired (plan.SpikeDriven), once each."""
        found = {s.coupling.name: s.coupling for s in self.program.statements
                 if isinstance(s, Product) and s.coupling.spikes and self.event_driven}
        return list(found.values())

    def drive_lines(self) -> list[str]:
        """State-independent terms for all steps of a chunk, as one array expression each."""
        return [f"{self.derived('drive_*', name)} = _per_step({code}, stop - start, {self.ident(name)}.ndim)"
                for name, code in self._drives()]

    def _drives(self) -> list[tuple[str, str]]:
        """(state, NumPy expression over the chunk's input windows) for each drive term."""
        printer = self.window_printer()
        return [(s.name, printer.doprint(s.drive)) for s in self.plan.states if s.drive != 0]

    def window_printer(self) -> NumPyPrinter:
        """Prints expressions over the chunk's input windows (x_w) and times (t_w, one per step)."""
        names = {**self.names, **{n: self.derived("*_w", n) for n in self.system.inputs}, TIME.name: "t_w"}
        return NumPyPrinter(names, scalars=self.scalars - {TIME.name}, population_of=self.units)

    def noise_lines(self) -> list[str]:
        """This chunk's Wiener increments dW_x (steps, batch..., n), one array per noisy state, and
        g*dW for the whole chunk where g reads no stage value (g over the chunk's input windows)."""
        if not self.plan.noise:
            return []
        increments = ", ".join(self.derived("dW_*", s.name) for s in self.plan.noise)
        shapes = ", ".join(self.noise_shape(s.name) for s in self.plan.noise)
        lines = [f"{increments}, = _increments(generators, stop - start, ({shapes},), dt)"]
        printer = self.window_printer()
        lines += [f"{self.derived('dW_*', s.name)} *= {printer.doprint(s.diffusion)}  # g*dW"
                  for s in self.plan.noise if s.diffusion_per_chunk]
        return lines + [f"{self.derived('dW_*', name)} += _step_rows({self.derived('drive_*', name)}, "
                        f"{self.derived('dW_*', name)}.ndim)  # + the step's drive" for name in self.noise_with_drive()]

    def noise_per_chunk(self, name: str) -> bool:
        return any(s.name == name and s.diffusion_per_chunk for s in self.plan.noise)

    def noise_with_drive(self) -> list[str]:
        """States whose Euler step adds its drive and g*dW of the whole chunk: the two are added up
        once per chunk (dW_x += drive_x), so each step adds one array, not two."""
        return [s.state.name for s in self.program.statements
                if isinstance(s, Rate) and s.target.role == "new" and s.drive and self.noise_per_chunk(s.state.name)
                and s.noise == ((1, Value(s.state.name, "noise", 0)),)]

    def noise_shape(self, name: str) -> str:
        """The shape (batch..., n) of a state's increments, as run() knows it."""
        return f"shapes[{literal(self.population_of[name])}]"

    def noise_layout(self) -> list[str]:
        """The noisy states, in the order each step draws their increments (the module's NOISE)."""
        return [s.name for s in self.plan.noise]

    def states_context(self) -> list[tuple[str, str, str, str]]:
        """(state, identifier, its buffer, its record array) for the run templates."""
        return [(n, self.ident(n), self.derived("*_buf", n), self.derived("rec_*", n)) for n in self.system.states]

    def inputs_context(self) -> list[tuple[str, str, str]]:
        """(input, identifier, its window of the chunk) for the run templates."""
        return [(n, self.ident(n), self.derived("*_w", n)) for n in self.system.inputs]

    # -- run: one step -------------------------------------------------------------------

    def step_inputs(self) -> list[str]:
        """This step's input values and time, as the step's expressions read them."""
        reads = self.program.reads()
        lines = [f"{self.ident(n)} = {self.derived('*_w', n)}[i]" for n in self.system.inputs if n in reads]
        lines += ["hpos = h0 + start + i  # this step's slot in the histories"] if self.plan.histories else []
        return lines + ([f"t = {self.step_time}"] if TIME.name in reads else [])

    def step_lines(self) -> list[str]:
        """One integration step: the step program's statements, each printed as array code."""
        lines = self.step_inputs()
        new_values_started = committing = False
        for s in self.program.statements:
            if getattr(s, "target", Value("", "")).role == "new" and not new_values_started:
                new_values_started = True
                lines += self.new_value_buffers()
            if isinstance(s, Commit) and not committing:
                committing = True
                lines += self.carried_products()
            lines += self.statement(s)
        return lines

    def carried_products(self) -> list[str]:
        """After the update, before the commit: each carried product (a synaptic trace's W @ s)
        follows its source to the new states, acc = decay*acc + (scale*W) @ (gain*train)."""
        lines = []
        for c in self.spike_products():
            if c.spikes.decay is not None:
                acc, names = self.ident(c.name), self.stage_names(0)
                lines += [f"{acc} *= {self.code(c.spikes.decay, names)}",
                          f"{acc} = {self.derived('spikes_*', c.name)}({self.ident(c.spikes.train)}, out={acc}, "
                          f"factor={self.code(c.spikes.gain, names)}, add=True)"]
        return lines

    def record_lines(self) -> list[str]:
        return [line for s in self.program.statements if isinstance(s, Record) for line in self.record(s)]

    def statement(self, s) -> list[str]:
        printers = {Stage: self.stage, Combine: self.combine, Evaluate: self.evaluate, Product: self.product,
                    Rate: self.rate, Commit: self.commit, Noise: self.noise,
                    Check: self.check, Emit: self.emit, Reset: self.reset, Remember: self.remember,
                    Recall: self.recall}
        return printers[type(s)](s) if type(s) in printers else []  # Record: at the record step (record_lines)

    def stage(self, s: Stage) -> list[str]:
        lines = [f"# stage {s.k + 1}"] if s.k > 0 else []
        if self.program.stage_uses_time(s.k):
            lines.append(f"{self.value(Value(TIME.name, 'time', s.k))} = t + {float(s.time)!r} * dt")
        return lines

    def new_value_buffers(self) -> list[str]:
        """x_new is written into the record row when this step is recorded (no copy), else into x's buffer."""
        return [f"{self.value(Value(n, 'new'))} = {self.derived('*_buf', n)} if countdown or "
                f"{self.derived('rec_*', n)} is None else {self.derived('rec_*', n)}[row]" for n in self.system.states]

    def combine(self, s: Combine) -> list[str]:
        target, base = self.value(s.target), self.value(s.base)
        if not s.terms and not s.noise:  # a stage that starts from the step's own states (a row of zeros)
            return [f"{target} = {base}"]
        if s.target.role == "new":
            # x_new = x + sum_j (b_j dt) k_j + sum_j c_j g_j dW: each k_j and g_j dW scaled in place
            # (the update is its last use)
            rates = [(self.value(v), b) for b, v in s.terms]
            noise = [(self.value(v), c) for c, v in s.noise]
            return [f"{k} *= {float(b)!r} * dt" for k, b in rates] + \
                [f"{n} *= {float(c)!r}" for n, c in noise if c != 1] + \
                self.sum_into(target, None, [base] + [k for k, _ in rates] + [n for n, _ in noise])
        if not s.terms:
            return self.sum_into(target, None, [base] + self.noise_terms(s.noise))
        (a0, v0), *rest = s.terms
        return self.sum_into(target, (self.value(v0), f"{float(a0)!r} * dt"),
                             [f"{float(a)!r} * dt * {self.value(v)}" for a, v in rest] + [base] +
                             self.noise_terms(s.noise))

    def noise_terms(self, noise) -> list[str]:
        """The terms c * g_j dW of a stage's start or of x_new (an Euler step's Rate)."""
        return [self.value(v) if c == 1 else f"{float(c)!r} * {self.value(v)}" for c, v in noise]

    def noise(self, s: Noise) -> list[str]:
        """g*dW of the stage into its buffer (out=); g*dW for a whole chunk is read as its row."""
        if s.coefficient is None:
            return []
        target = self.value(s.target)
        self.keep(target)
        g = self.code(s.coefficient, self.stage_names(s.stage))
        return [f"{target} = np.multiply({g}, {self.derived('dW_*', s.target.name)}[i], out={target})"]

    def evaluate(self, s: Evaluate) -> list[str]:
        """`target = expr`; a single ufunc call reuses target's memory from the step before (out=)."""
        target = self.value(s.target)
        code = self.code(s.expr, self.stage_names(s.stage))
        if self.printer.ufunc(s.expr) and not {x.name for x in s.expr.free_symbols} <= self.scalars:
            self.keep(target)
            return [f"{target} = {code[:-1]}, out={target})"]
        return [f"{target} = {code}"]

    def product(self, s: Product) -> list[str]:
        target = self.value(s.target)
        self.keep(target)
        source = self.code(s.coupling.source, self.stage_names(s.stage))
        dense = f"{target} = {self.derived('product_*', s.coupling.name)}({source}, out={target})"
        spikes = s.coupling.spikes if self.event_driven else None
        if spikes is None:
            return [dense]
        if spikes.decay is None:  # the source is a spike train
            return [f"{target} = {self.derived('spikes_*', s.coupling.name)}({source}, out={target})"]
        # carried from step to step (carried_products); computed in full on the run's first step
        return [f"if {target} is None:", f"    {dense}"]

    def rate(self, s: Rate) -> list[str]:
        """The plan's sum for one state (x_new itself when dt is folded in), in place."""
        x, target = self.value(s.state), self.value(s.target)
        drive = s.drive and s.state.name not in self.noise_with_drive()  # (else it is in g*dW's row)
        terms = [self.value(p) for p in s.products] + ([self.value(s.rest)] if s.rest else []) + \
            ([f"{self.derived('drive_*', s.state.name)}[i]"] if drive else []) + self.noise_terms(s.noise)
        names = self.stage_names(s.stage)
        if s.target.role == "new":  # x_new = a*x + (dt*c*W) @ y + dt*rest + dt*drive + g*dW
            if s.linear == 1:
                return self.sum_into(target, None, [x] + terms)
            return self.sum_into(target, (x, self.code(s.linear, names)), terms)
        # Start from the state (times 0 when it has no linear term: the step's own, the same shape)
        # unless a product does: either has the full (batch..., n) shape the stage values need.
        if s.linear == 0 and not s.products:
            return self.sum_into(target, (self.value(Value(s.state.name, "state", 0)), "0"), terms)
        return self.sum_into(target, (x, self.code(s.linear, names)) if s.linear != 0 else None, terms)

    def commit(self, s: Commit) -> list[str]:
        return [f"{self.ident(s.state)} = {self.value(s.value)}"]

    # -- events (step.py says what they mean) --------------------------------------------

    def events_layout(self) -> dict[str, str | None]:
        """EVENTS of the module: {event: the input it emits into, or None}."""
        return {e.name: e.emit for e in self.system.events}

    def event_records(self) -> list[tuple[str, str]]:
        """(event, its record array) for the run templates: the spike counts of each row."""
        return [(e.name, self.derived("rec_*", e.name)) for e in self.system.events]

    def check(self, s: Check) -> list[str]:
        fired, held = self.value(Value(s.event, "fired")), self.value(Value(s.event, "held"))
        code = self.code(s.condition, self.stage_names(0))
        if self.printer.ufunc(s.condition):  # a comparison: into the mask of the step before (out=)
            self.keep(fired)
            code = f"{code[:-1]}, out={fired})"
        lines = [f"{fired} = {code}"]
        if s.refractory:
            lines = [f"{held} = {self.ident(s.refractory)} > 0.5 * dt"] + lines + [f"{fired} &= ~{held}"]
        return lines + self.event_record(s.event, fired)

    def event_record(self, event: str, fired: str) -> list[str]:
        """The spike count of this step into the event's record row, when it is recorded."""
        rec = self.derived("rec_*", event)
        return [f"if {rec} is not None and row < len({rec}):", f"    {rec}[row] += {fired}"]

    def emit(self, s: Emit) -> list[str]:
        train = self.ident(s.input)
        self.keep(train)
        return [f"{train} = np.divide({self.value(Value(s.event, 'fired'))}, DTYPE(dt), out={train})"]

    def reset(self, s: Reset) -> list[str]:
        """The reset values, all computed before any is assigned, copied in where the event fired
        (or is held); the refractory clock set where it fired."""
        fired = self.value(Value(s.event, "fired"))
        where = f"{fired} | {self.value(Value(s.event, 'held'))}" if s.held else fired
        names = self.reset_names()
        values = [self.code(value, names) for _, value in s.assignments]
        lines = []
        if len(values) > 1:
            temporaries = [self.derived(f"*_reset_{i}", s.event) for i in range(len(values))]
            lines += [f"{t} = np.array({v}, dtype=DTYPE)" for t, v in zip(temporaries, values)]  # copies
            values = temporaries
        lines += [f"np.copyto({self.value(Value(state, 'new'))}, {value}, where={where})"
                  for (state, _), value in zip(s.assignments, values)]
        if s.clock:
            lines.append(f"np.copyto({self.value(Value(s.clock, 'new'))}, {self.code(s.duration, names)}, "
                         f"where={fired})")
        return lines

    def reset_names(self) -> dict[str, str]:
        return {**self.names, **{name: self.value(v) for name, v in self.program.reset_bindings().items()}}

    def record(self, s: Record) -> list[str]:
        return []  # the new value was written into the record row already (new_value_buffers)

    def sum_into(self, target: str, scaled: tuple[str, str] | None, terms: list[str]) -> list[str]:
        """target = array*factor + sum(terms), one in-place ufunc per term and no temporary array.

        The target's memory comes from the step before (None on the first step: the ufunc
        allocates it then), or is a record row or state buffer already.
        """
        terms = list(terms)
        if scaled is not None:
            first = f"np.multiply({scaled[0]}, {scaled[1]}, out={target})"
        elif len(terms) >= 2:
            first = f"np.add({terms.pop(0)}, {terms.pop(0)}, out={target})"
        else:
            first = f"np.positive({terms.pop(0)}, out={target})"  # a copy
        if target not in {self.value(Value(n, "new")) for n in self.system.states}:
            self.keep(target)
        return [f"{target} = {first}"] + [f"{target} += {term}" for term in terms]

    def keep(self, buffer: str) -> None:
        """A buffer that lives from one step to the next (None before the first step)."""
        if buffer not in self.out_buffers:
            self.out_buffers.append(buffer)


def applies_to_floats(system: System) -> bool:
    """The Python-float loop needs every population's work to be element-wise (no weight matrix)."""
    return not any(p.shape == "matrix" for p in system.params.values())
