"""The NumPy backend's reverse sweep: the statements of adjoint.py printed as array code.

grad() (templates/numpy/grad.py.j2) recomputes each step of a checkpointed segment with the
forward statements, every value of every stage in its own variable (no buffer shared between
stages, no new value written over the state it came from), then prints the reverse step.
"""
from __future__ import annotations

import sympy

from ...equations import TIME, symbol
from ..adjoint import Adjoint, DriveAdjoint, ParamAdjoint, ReverseObservation, ReverseStep, Term, WeightAdjoint
from ..plan import MatrixProduct
from ..step import OBSERVE, Commit, Evaluate, Product, Stage, Value
from ..templating import literal
from .arrays import NumPyModule


class GradientModule(NumPyModule):
    """Identifiers and lines of grad() for one reverse step."""

    def __init__(self, reverse: ReverseStep, observed: ReverseObservation):
        super().__init__(reverse.program)
        self.reverse, self.observed = reverse, observed
        self._adjoints: dict = {}

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
        """(value, its list over the segment's steps) for every forward value the reverse step
        reads: kept while the segment is integrated again, so no step is computed a third time.
        (The step's own states come from the segment's states; inputs and times are re-read.)"""
        read = []
        for s in self.reverse.statements:
            terms = s.terms if isinstance(s, (Adjoint, ParamAdjoint)) else ()
            for t in terms:
                bindings = self.program.bindings(t.stage)
                read += [bindings[x.name] for x in sorted(t.factor.free_symbols, key=lambda x: x.name)
                         if x.name in bindings]
            if isinstance(s, WeightAdjoint):
                read.append(s.source)
        kept = [v for v in dict.fromkeys(read) if not (v.role == "state" and v.stage == 0) and v.role != "time"]
        return [(self.value(v), self.derived("kept_*", self.value(v))) for v in kept]

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
            elif isinstance(s, DriveAdjoint):  # (in reverse order of the steps)
                total = " + ".join(self.adjoint(v) for v in s.values)
                lines.append(f"{self.derived('lam_drive_*', s.state)}.append({total})")
            elif isinstance(s, WeightAdjoint):  # (the source is a kept copy, or a row of the segment's states)
                lines += [f"{self.derived('lam_seq_*', s.coupling.name)}.append({self.adjoint(s.product)})",
                          f"{self.derived('source_seq_*', s.coupling.name)}.append({self.value(s.source)})"]
        return lines

    def terms(self, terms: tuple[Term, ...]) -> str:
        return " + ".join(self.term(t) for t in terms)

    def term(self, t: Term) -> str:
        lam = self.adjoint(t.adjoint)
        if t.transpose is not None:
            return f"{self.derived('transposed_*', t.transpose.name)}({lam}, out=None)"
        if t.factor == 1:
            return lam
        return f"({self.code(t.factor, self.stage_names(t.stage))})*{lam}"

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

    def weight_adjoints(self) -> list[tuple[str, str, str, str]]:
        """(matrix adjoint, lam sequence, source sequence, scale) per trained product (all its stages)."""
        couplings = {s.coupling.name: s.coupling for s in self.reverse.statements + self.observed.weights
                     if isinstance(s, WeightAdjoint)}
        return [(self.adjoint(c.matrix), self.derived("lam_seq_*", c.name), self.derived("source_seq_*", c.name),
                 self.code(c.scale)) for c in couplings.values()]

    def drive_adjoints(self) -> list[tuple[str, str]]:
        return [(self.derived("lam_drive_*", name), self.ident(name)) for name in self.reverse.drives]

    def chain_lines(self) -> list[str]:
        """At the end: the invariants' adjoints passed on to the parameters they are made of."""
        lines = []
        for name, expr in self.reverse.invariants.items():
            for p in self._trainables_in(expr):
                lines.append(self._add_to_param(p, f"({self.code(sympy.diff(expr, symbol(p)))})*{self.adjoint(name)}"))
        return lines

    def drive_chain_lines(self) -> list[str]:
        """Per segment: sum over its steps of d(drive)/d(parameter) times the drive's adjoint."""
        printer, lines = self.window_printer(), []
        for name, drive in self.reverse.drives.items():
            for p in self._trainables_in(drive):
                factor = printer.doprint(sympy.diff(drive, symbol(p)))
                lines.append(self._add_to_param(p, f"({factor})*{self.derived('lam_drive_*', name)}"))
        return lines

    def _add_to_param(self, p: str, contribution: str) -> str:
        """lam_p += contribution, each reduced to the parameter's shape first (both may carry
        the axes of the whole population and of the steps)."""
        shape = f"np.shape({self.ident(p)})"
        return f"{self.adjoint(p)} = _sum_to({self.adjoint(p)}, {shape}) + _sum_to({contribution}, {shape})"

    def _trainables_in(self, expr: sympy.Expr) -> list[str]:
        return sorted(x.name for x in expr.free_symbols if x.name in self.reverse.trainable)
