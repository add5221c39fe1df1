"""The NumPy backend's reverse sweep: the statements of adjoint.py printed as array code.

grad() (templates/numpy/grad.py.j2) recomputes each step of a checkpointed segment with the
forward statements, every value of every stage in its own variable (no buffer shared between
stages, no new value written over the state it came from), then prints the reverse step.
"""
from __future__ import annotations

import sympy

from ...equations import TIME
from ...errors import UnsupportedFeatureError
from ..adjoint import (Adjoint, DriveAdjoint, ParamAdjoint, ResetAdjoint, ReverseObservation, ReverseStep, Term,
                       WeightAdjoint, partials)
from ..plan import MatrixProduct
from ..step import OBSERVE, Commit, Evaluate, Product, Stage, Value
from ..templating import literal
from .arrays import NumPyModule


class GradientModule(NumPyModule):
    """Identifiers and lines of grad() for one reverse step."""

    event_driven = False  # every recomputed step stands alone: its products in full

    def __init__(self, reverse: ReverseStep, observed: ReverseObservation):
        super().__init__(reverse.program)
        self.reverse, self.observed = reverse, observed
        self._adjoints: dict = {}
        self._factors: dict[str, str] = {}      # a factor's code over the segment's arrays -> its name
        self._step_reads: set[str] = set()      # names the factors printed in the reverse step read
        self._step_values: dict[Value, None] = {}  # the forward values those factors read

    # -- the forward step, recomputed: one variable per value and stage --------------------

    def value(self, v: Value) -> str:
        if v.role == "observed":
            return self.derived("obs_*", v.name)
        if v.role == "time" and v.stage == OBSERVE:
            return self.derived("t_obs", TIME.name)
        if v.role in ("product", "rest") and v.stage > 0:
            return self.derived(f"*_{v.stage + 1}", v.name if v.role == "product" else self.derived("inc_*", v.name))
        return super().value(v)

    def stage_names(self, k: int) -> dict[str, str]:
        if k != OBSERVE:
            return super().stage_names(k)
        return {**self.names, **{name: self.value(v) for name, v in self.observed.observation.bindings().items()}}

    def new_value_buffers(self) -> list[str]:
        return []

    def commit(self, s: Commit) -> list[str]:
        return []  # grad() sets each step's states from the segment it recomputed

    def event_record(self, event: str, fired: str) -> list[str]:
        return []  # grad() records no spikes

    def sum_into(self, target: str, scaled, terms: list[str]) -> list[str]:
        lines = super().sum_into(target, scaled, terms)
        self.keep(target)  # new values too: their own buffers, never a record row
        return lines

    # -- the reverse step ------------------------------------------------------------------------

    def adjoint(self, v) -> str:
        """lam_x: the identifier of the adjoint of a value, a parameter or an invariant."""
        if v not in self._adjoints:
            self._adjoints[v] = self.namer.fresh("lam_" + (self.value(v) if isinstance(v, Value) else self.ident(v)))
        return self._adjoints[v]

    def kept_values(self) -> list[tuple[str, str]]:
        """(value, its (steps, ...) array over the segment) for every forward value the reverse
        step reads: kept while the segment is integrated again, so no step is computed a third
        time. (The step's own and new states are rows of the segment's states; times are re-read.)"""
        kept = [v for v in self._forward_reads() if self._array(v) is None and v.role != "time"]
        return [(self.value(v), self.derived("kept_*", self.value(v))) for v in kept]

    def _forward_reads(self) -> list[Value]:
        read = []
        for s in self.reverse.statements:
            for t in s.terms if isinstance(s, (Adjoint, ParamAdjoint)) else ():
                read += self._bound(t.factor, t.stage)
                r = t.reduction
                while r is not None:
                    read += self._bound(r.outer, t.stage)
                    r = r.via
            if isinstance(s, WeightAdjoint):
                read.append(s.source)
            if isinstance(s, ResetAdjoint):
                read += self._bound(s.keep, 0)
        return list(dict.fromkeys(read))

    def _bound(self, expr: sympy.Expr, stage: int) -> list[Value]:
        """The forward values an expression of the reverse step reads."""
        bindings = self.program.bindings(stage)
        return [bindings[x.name] for x in sorted(expr.free_symbols, key=lambda x: x.name) if x.name in bindings]

    def _array(self, v: Value) -> str | None:
        """The segment's array of a value by step, where the segment's states hold it."""
        if v.role == "state" and v.stage == 0:
            return f"{self.derived('states_*', v.name)}[:-1]"
        if v.role == "new":
            return f"{self.derived('states_*', v.name)}[1:]"
        return None

    def segment_array(self, v: Value) -> str:
        return self._array(v) or self.derived("kept_*", self.value(v))

    def recompute_lines(self) -> list[str]:
        """Before each recomputed step: its new states are written straight into the segment's
        states (the update's sums write in place, out=)."""
        return [f"{new} = {self.derived('states_*', n)}[i + 1]" for n, new in self._in_place()]

    def _in_place(self) -> list[tuple[str, str]]:
        return [(n, new) for n, new, _, _ in self.new_states() if new in self.out_buffers]

    def keep_lines(self) -> list[str]:
        """After each recomputed step: the values the reverse reads, into the segment's arrays
        (made at the segment's first step, when their shapes are known)."""
        in_place = {new for _, new in self._in_place()}
        lines = [f"{self.derived('states_*', n)}[i + 1] = {new}" for n, new, _, _ in self.new_states()
                 if new not in in_place]
        kept = self.kept_values()
        if kept:
            lines.append("if i == 0:")
            lines += [f"    {array} = _rows(stop - start, {value}, shapes)" for value, array in kept]
        return lines + [f"{array}[i] = {value}" for value, array in kept]

    def reused_buffers(self) -> list[str]:
        """Buffers reused by out= from one step to the next (None before the first)."""
        in_place = {new for _, new in self._in_place()}
        return [b for b in self.out_buffers if b not in in_place]

    def rows_per_step(self) -> int:
        """How many values of a population's size the reverse keeps per step of a segment."""
        weights = [s for s in self.reverse.statements if isinstance(s, WeightAdjoint)]
        return len(self.system.states) + len(self.kept_values()) + len(self._factors) + len(weights) + \
            len(self.reverse.drives)

    def factor_lines(self) -> list[str]:
        """Per segment, after it is integrated again: each factor of the reverse step that reads
        forward values, for all its steps as one array expression (the reverse step reads a row)."""
        return [f"{name} = {code}" for code, name in self._factors.items()]

    def reverse_reads(self) -> list[str]:
        """At each reverse step: the forward values its factors read one by one (a factor that
        reads the time is printed in the step; the others read a row of factor_lines())."""
        lines = []
        if self._step_reads & ({TIME.name} | set(self.system.inputs)):
            lines += self.step_inputs() + self.time_lines()
        for v in self._step_values:
            row = {"state": f"{self.derived('states_*', v.name)}[i]", "new": f"{self.derived('states_*', v.name)}[i + 1]"}
            lines.append(f"{self.value(v)} = {row[v.role] if self._array(v) else self.segment_array(v) + '[i]'}")
        return lines

    def time_lines(self) -> list[str]:
        """The stage times the reverse step's factors may read."""
        return [line for s in self.program.statements if isinstance(s, Stage) for line in self.stage(s)
                if not line.startswith("#")]

    def reverse_lines(self) -> list[str]:
        lines = []
        for s in self.reverse.statements:
            if isinstance(s, Adjoint):
                lines.append(f"{self.adjoint(s.value)} = {self.terms(s.terms) if s.terms else '0.0'}")
            elif isinstance(s, ParamAdjoint):
                lines.append(f"{self.adjoint(s.name)} = {self.adjoint(s.name)} + {self.terms(s.terms)}")
            elif isinstance(s, ResetAdjoint):  # a reset value is a constant: no adjoint where it fired
                lam = self.adjoint(Value(s.state, "new"))
                lines.append(f"{lam} = {self._times(s.keep, 0, lam)}")
            elif isinstance(s, DriveAdjoint):
                total = " + ".join(self.adjoint(v) for v in s.values)
                lines.append(f"{self.derived('lam_drive_*', s.state)}[i] = {total}")
            elif isinstance(s, WeightAdjoint):  # its rows, for one matrix product per segment
                rows = self._lam_rows(s)
                lines += ["if i == stop - start - 1:",
                          f"    {rows} = _rows(stop - start, {self.adjoint(s.product)}, shapes)",
                          f"{rows}[i] = {self.adjoint(s.product)}"]
        return lines

    def _lam_rows(self, s: WeightAdjoint) -> str:
        return self.derived("lam_rows_*", self.value(s.product))

    def terms(self, terms: tuple[Term, ...]) -> str:
        return " + ".join(self.term(t) for t in terms)

    def term(self, t: Term) -> str:
        lam = self.adjoint(t.adjoint)
        if t.transpose is not None:
            return f"{self.derived('transposed_*', t.transpose.name)}({lam}, out=None)"
        if t.reduction is not None:
            lam = self._through(t.reduction, lam, lambda expr: self._coefficient(expr, t.stage), t.adjoint.name)
        return self._times(t.factor, t.stage, lam)

    def _through(self, r, lam: str, coefficient, owner: str) -> str:
        """lam through mean() or sum() (the reductions it sits in first): outer * lam summed over
        the units, given back to each."""
        if r.via is not None:
            lam = self._through(r.via, lam, coefficient, owner)
        outer = lam if r.outer == 1 else f"{coefficient(r.outer)}*{lam}"
        return f"_spread_{r.kind}({outer}, {self._units_of(r.argument, owner)})"

    def _times(self, expr: sympy.Expr, stage: int, lam: str) -> str:
        return lam if expr == 1 else f"{self._coefficient(expr, stage)}*{lam}"

    def _coefficient(self, expr: sympy.Expr, stage: int) -> str:
        """A factor of the reverse step: a row of its array over the segment when it reads
        forward values (and no time), else printed in the step."""
        if stage != OBSERVE and not expr.is_Atom and self._by_segment(expr, stage):
            return f"{self._factor(expr, stage)}[i]"
        if stage != OBSERVE:
            self._step_reads |= {x.name for x in expr.free_symbols}
            self._step_values.update(dict.fromkeys(v for v in self._bound(expr, stage) if v.role != "time"))
        return f"({self.code(expr, self.stage_names(stage))})"

    def _by_segment(self, expr: sympy.Expr, stage: int) -> bool:
        return TIME.name not in {x.name for x in expr.free_symbols} and bool(self._bound(expr, stage))

    def _factor(self, expr: sympy.Expr, stage: int) -> str:
        names = {**self.names, **{n: self.derived("*_w", n) for n in self.system.inputs},
                 **{name: self.segment_array(v) for name, v in self.program.bindings(stage).items()
                    if v.role != "time"}}
        code = self.code(expr, names)
        if code not in self._factors:
            self._factors[code] = self.namer.fresh(f"factor_{len(self._factors)}")
        return self._factors[code]

    def _units_of(self, argument: sympy.Expr, owner: str) -> str:
        """The number of units a mean() or sum() runs over, as code: those of the population of
        its argument's variables, else of the value it is part of (owner)."""
        labels = [self.population_of[x.name] for x in sorted(argument.free_symbols, key=lambda x: x.name)
                  if x.name in self.population_of] + ([self.population_of[owner]] if owner in self.population_of else [])
        if not labels:
            raise UnsupportedFeatureError(f"internal error: no population for the units of mean() or sum() of {argument}")
        return f"shapes[{literal(labels[0])}][-1]"

    # -- the observation: computed variables recorded with a cotangent ----------------------------

    def observation_lines(self) -> list[str]:
        """At a recorded step: the computed variables from the new states, then their reverse."""
        observation = self.observed.observation
        reads = {x.name for s in observation.statements
                 for x in (s.expr if isinstance(s, Evaluate) else s.coupling.source).free_symbols}
        lines = [f"{self.value(Value(n, 'new'))} = {self.derived('states_*', n)}[i + 1]" for n in self.system.states]
        lines += [f"{self.ident(n)} = {self.derived('*_w', n)}[i]" for n in self.system.inputs if n in reads]
        if TIME.name in reads:
            lines.append(f"{self.value(Value(TIME.name, 'time', OBSERVE))} = DTYPE(t0 + (start + i + 1) * dt)")
        for s in observation.statements:
            lines += self.evaluate(s) if isinstance(s, Evaluate) else self.product(s)
        for a in self.observed.observed:
            value, terms = self.value(a.value), self.terms(a.terms)
            seed = f"_cotangent(cotangents, {literal(a.value.name)}, row, {value})" \
                if a.value.name in self.system.outputs else f"np.zeros_like({value})"
            lines.append(f"{self.adjoint(a.value)} = " + (f"{seed} + {terms}" if terms and seed[0] == "_" else
                                                          terms or seed))
        for a in self.observed.into_states:
            lines.append(f"{self.adjoint(a.value)} = {self.adjoint(a.value)} + {self.terms(a.terms)}")
        for p in self.observed.params:
            lines.append(f"{self.adjoint(p.name)} = {self.adjoint(p.name)} + {self.terms(p.terms)}")
        for w in self.observed.weights:  # (an observed value's buffer is reused: a copy)
            lines += [f"{self.derived('lam_seq_*', w.coupling.name)}.append({self.adjoint(w.product)})",
                      f"{self.derived('source_seq_*', w.coupling.name)}.append(np.array({self.value(w.source)}))"]
        return lines

    def observation_products(self) -> list[MatrixProduct]:
        return [s.coupling for s in self.observed.observation.statements if isinstance(s, Product)]

    # -- around the loop --------------------------------------------------------------------------

    def new_states(self) -> list[tuple[str, str, str, str]]:
        """(state, its new value, the adjoint of the new value, the adjoint of the state) per state:
        a step's new value takes the adjoint its state had at the start of the step after it."""
        return [(n, self.value(Value(n, "new")), self.adjoint(Value(n, "new")), self.adjoint(Value(n, "state", 0)))
                for n in self.system.states]

    def initial_adjoints(self) -> list[tuple[str, str]]:
        """(state, the adjoint of the step's own state): what a step passes to the one before."""
        return [(n, self.adjoint(Value(n, "state", 0))) for n in self.system.states]

    def grad_params(self) -> list[tuple[str, str]]:
        """The parameters grad() reads: run()'s, and every trainable one (its gradient's shape)."""
        used = {n for n, _ in self.run_params()} | self.reverse.trainable
        return [(n, self.ident(n)) for n in self.system.params if n in used]

    def trainable_params(self) -> list[tuple[str, str, str]]:
        """(parameter, identifier, adjoint) of each trainable parameter."""
        return [(n, self.ident(n), self.adjoint(n)) for n in self.system.params if n in self.reverse.trainable]

    def invariant_adjoints(self) -> list[str]:
        return [self.adjoint(name) for name in self.reverse.invariants]

    def transposed_lines(self) -> list[str]:
        """The transposed products the reverse reads, and the observation's own products."""
        observed = self.observation_products()
        return [f"{self.derived('product_*', c.name)} = _product(weights={self.ident(c.matrix)}, scale=1, "
                f"unbatched=unbatched)" for c in observed] + \
            [f"{self.derived('transposed_*', c.name)} = _product(weights={self.ident(c.matrix)}.T, "
             f"scale={self.code(c.scale)}, unbatched=unbatched)  # lam -> (scale * W)^T lam"
             for c in self.plan.couplings + observed]

    def uses_products(self) -> bool:
        return bool(self.plan.couplings or self.observation_products())

    def grams(self) -> list[tuple[str, str, str]]:
        """(matrix adjoint, sum of lam source^T over all steps, scale) per trained product; the
        scale is applied once at the end."""
        couplings = {s.coupling.name: s.coupling for s in self.reverse.statements + self.observed.weights
                     if isinstance(s, WeightAdjoint)}
        return [(self.adjoint(c.matrix), self.derived("gram_*", c.name), self.code(c.scale))
                for c in couplings.values()]

    def gram_lines(self) -> list[str]:
        """Per segment: each trained product's lam source^T summed over the segment's steps, one
        matrix product each (the step's products from their rows, the observation's from lists)."""
        lines = []
        for s in self.reverse.statements:
            if isinstance(s, WeightAdjoint):
                gram = self.derived("gram_*", s.coupling.name)
                lines.append(f"{gram} = {gram} + _outer_sum({self._lam_rows(s)}, {self.segment_array(s.source)})")
        for w in self.observed.weights:
            gram = self.derived("gram_*", w.coupling.name)
            lines.append(f"{gram} = {gram} + _outer_sum({self.derived('lam_seq_*', w.coupling.name)}, "
                         f"{self.derived('source_seq_*', w.coupling.name)})")
        return lines

    def observed_sequences(self) -> list[tuple[str, str]]:
        """(lam list, source list) of each product of the observation, filled at recorded steps."""
        return [(self.derived("lam_seq_*", w.coupling.name), self.derived("source_seq_*", w.coupling.name))
                for w in self.observed.weights]

    def drive_adjoints(self) -> list[tuple[str, str]]:
        """(rows of the drive's adjoint over the segment's steps, the state's population)."""
        return [(self.derived("lam_drive_*", name), self.population_of[name]) for name in self.reverse.drives]

    def chain_lines(self) -> list[str]:
        """At the end: the invariants' adjoints passed on to the parameters they are made of."""
        return [line for name, expr in self.reverse.invariants.items()
                for line in self._chained(expr, self.adjoint(name), self.printer, name)]

    def drive_chain_lines(self) -> list[str]:
        """Per segment: sum over its steps of d(drive)/d(parameter) times the drive's adjoint."""
        printer = self.window_printer()
        return [line for name, drive in self.reverse.drives.items()
                for line in self._chained(drive, self.derived("lam_drive_*", name), printer, name)]

    def _chained(self, expr: sympy.Expr, lam: str, printer, owner: str) -> list[str]:
        """lam_p += d(expr)/dp * lam for each trainable p in expr (through mean() and sum() too)."""
        lines = []
        for x, factor, r in partials(expr, where=owner):
            if x.name in self.reverse.trainable:
                through = lam if r is None else self._through(r, lam, lambda e: f"({printer.doprint(e)})", owner)
                lines.append(self._add_to_param(x.name, f"({printer.doprint(factor)})*{through}"))
        return lines

    def _add_to_param(self, p: str, contribution: str) -> str:
        """lam_p += contribution, each reduced to the parameter's shape first (both may carry
        the axes of the whole population and of the steps)."""
        shape = f"np.shape({self.ident(p)})"
        return f"{self.adjoint(p)} = _sum_to({self.adjoint(p)}, {shape}) + _sum_to({contribution}, {shape})"

    def _trainables_in(self, expr: sympy.Expr) -> list[str]:
        return sorted(x.name for x in expr.free_symbols if x.name in self.reverse.trainable)
