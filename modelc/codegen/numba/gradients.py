"""The compiled CPU backend's reverse sweep: grad() with each checkpointed segment in one numba function.

grad() (templates/numba/grad.py.j2) has the NumPy module's contract and checkpointing (the
shared head numpy/grad_head.py.j2). Each segment is one call of the compiled `_grad_segment`:

    forward   the segment integrated again by the forward kernel's own loops (kernel.py's blocks),
              each value the reverse reads written into its rows (steps, members, n), the states
              into theirs (steps + 1, members, n)
    reverse   backwards over the segment's steps: adjoint.py's reverse statements printed as
              fused loops over (batch member, unit), one per run of statements of one population,
              each adjoint a local float, stored into an array where another loop reads it;
              (scale*W)^T lambda as scale * np.dot(lambda, W) (W as given, the scale
              applied where a loop reads the product: run()'s kernel's way), the adjoint through mean()/sum() as a loop of its own

On the Python side, per segment: the weights' adjoints (sum over the steps of lambda source^T,
one np.dot, numpy/grad_helpers.py.j2's _outer_sum) and the drives' chain; at the end the
invariants' chain (GradientModule's NumPy lines). Nothing is differentiated here. Events: the
surrogate's factors are terms like any other; where a reset fired, the new state's adjoint is
multiplied by its keep (0) in the same loop as the rest of its seed. grad() runs the whole batch
in one call, on one thread (run()'s threads= has no counterpart here).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy

from ...equations import TIME
from ...errors import UnsupportedFeatureError
from ..adjoint import (Adjoint, DriveAdjoint, ParamAdjoint, Reduction, ResetAdjoint, ReverseObservation, ReverseStep,
                       Term, WeightAdjoint)
from ..layout import matrix_populations
from ..step import OBSERVE, Evaluate, Stage, Value
from ..numpy.gradients import GradientModule
from .kernel import TEMPLATES, NumbaModule


@dataclass(frozen=True)
class At:
    """Where a factor of the reverse step is read: the bindings of its stage (kernel.py's names_for)."""

    stage: int


@dataclass
class Item:
    """One element-wise statement of the reverse step: target = code ("set": a local float, its
    array where another block reads it), target[m, j] += code ("add"), target[i, m, j] = code ("row")."""

    target: str
    mode: str
    code: Callable[["ReverseLoop"], str]
    reads: frozenset[str]


@dataclass
class ReverseLoop:
    """Consecutive element-wise statements of one population: one loop over its units."""

    population: str
    items: list[Item] = field(default_factory=list)
    defined: set = field(default_factory=set)


@dataclass(frozen=True)
class Spread:
    """Per batch member: the sum over a population's units of code (divided by a width for a mean)."""

    total: str
    population: str
    code: str
    reads: frozenset[str]
    divisor: str | None


@dataclass(frozen=True)
class Transposed:
    """out = lambda @ W: the adjoint of a coupling's source, (members, n_source), once multiplied by
    the coupling's scale where a loop reads it."""

    out: str
    lam: str
    matrix: str


class NumbaGradientModule(GradientModule, NumbaModule):
    """The lines of `_grad_segment` and the tables grad() reads, for one numba module."""

    templates = TEMPLATES + ("numba/grad.py.j2",)

    def __init__(self, reverse: ReverseStep, observed: ReverseObservation):
        self.matrix_target = {w: target for w, (target, _) in matrix_populations(reverse.program.plan.system).items()}
        super().__init__(reverse, observed)
        self.kept = [v for v in self._forward_reads() if v.role not in ("time", "new") and
                     not (v.role == "state" and v.stage == 0)]
        self.stored |= set(self.kept)
        if observed.observed:  # the reverse of a record step reads the recorded computed variables
            self.stored |= {s.target for s in self.observation.statements}
        self.totals: list[str] = []
        self.transposed: dict[Value, Transposed] = {}
        self.accumulators: dict[tuple[str, str], str] = {}
        self.observed_blocks = self._observed_reverse()
        self.step_blocks = self._reverse(reverse.statements, self._seeds())
        self.lam_stored = self._lam_stored(self.observed_blocks + self.step_blocks)

    def population(self, v: Value) -> str:
        """A product's units are its matrix's target population's (its adjoint is summed on them)."""
        if v.role == "product" and v.name not in self.population_of:
            return self.matrix_target[next(c.matrix for c in self.plan.couplings if c.name == v.name)]
        return super().population(v)

    # -- the forward values the reverse reads: rows of the segment ------------------------

    def kept_rows(self) -> list[tuple[str, str, str, str]]:
        """(buffer, its rows over the segment, population width, dtype) of each forward value the
        reverse reads (bound to row i of its rows in step i, forward and backwards)."""
        every = {buffer: (width, kind) for buffer, width, kind in NumbaModule.buffers(self)}
        return [(self.buffer(v), self.derived("rows_*", self.buffer(v))) + every[self.buffer(v)] for v in self.kept]

    def buffers(self) -> list[tuple[str, str, str]]:
        kept = {self.buffer(v) for v in self.kept}
        return [b for b in NumbaModule.buffers(self) if b[0] not in kept]

    def states_rows(self) -> list[tuple[str, str, str, str]]:
        """(state, its rows over the segment (steps + 1, members, n), its buffer, its new value's buffer)."""
        return [(n, self.derived("states_*", n), self.buffer(Value(n, "state", 0)), self.buffer(Value(n, "new")))
                for n in self.system.states]

    def forward_lines(self) -> list[str]:
        """One step of the segment again: the forward kernel's blocks, without records."""
        return [line for block in self.blocks[:self.observe_from] for line in self.block_lines(block)]

    def observation_lines(self) -> list[str]:
        """At a record step: the recorded computed variables from the new states (bound to the states' buffers)."""
        time = f"{self.value(Value(TIME.name, 'time', OBSERVE))} = t0 + (start + i + 1) * dt"
        return [time] + [line for block in self.blocks[self.observe_from:] for line in self.block_lines(block)]

    def time_lines(self) -> list[str]:
        return [line for s in self.program.statements if isinstance(s, Stage) for line in self.block_lines(s)]

    # -- the reverse step as blocks ---------------------------------------------------------

    def lam(self, name: str, loop: ReverseLoop | None) -> str:
        """An adjoint's value of one unit: its local float in the loop that defines it, else its array."""
        return self.derived("l_*", name) if loop is not None and name in loop.defined else f"{name}[m, j]"

    def factor(self, expr: sympy.Expr, stage: int, blocks: list) -> Callable[[ReverseLoop], str]:
        """A factor of the reverse step, printed over the forward values of its stage; a mean()/sum()
        it reads is computed again by a reduction loop before its loop (kernel.py's)."""
        if expr == 1:
            return lambda loop: ""
        reductions = self._reductions(Evaluate(Value("", "factor"), expr, stage))
        blocks += reductions
        found = {r[2]: r[0] for r in reductions}
        return lambda loop: "(" + self.print_expr(expr, self.names_for(At(stage), loop, found), found) + ")*"

    def term(self, t: Term, blocks: list) -> tuple[Callable, frozenset[str]]:
        """One term of an adjoint's sum, its matmul or reduction added to blocks first."""
        if t.transpose is not None:
            if t.adjoint not in self.transposed:
                self.transposed[t.adjoint] = Transposed(self.derived("lam_t_*", self.adjoint(t.adjoint)),
                                                        self.adjoint(t.adjoint), self.derived("mat_*", t.transpose.matrix))
                blocks.append(self.transposed[t.adjoint])
            out, scale = self.transposed[t.adjoint].out, self.product_scale(t.adjoint)
            return (lambda loop: f"({scale} * {out}[m, j])" if scale else f"{out}[m, j]"), frozenset()
        lam = self.adjoint(t.adjoint)
        factor = self.factor(t.factor, t.stage, blocks)
        if t.reduction is not None:
            total = self.spread(t.reduction, lam, self.population(t.adjoint), t.stage, blocks)
            return (lambda loop: f"{factor(loop)}{total}[m]"), frozenset()
        return (lambda loop: f"{factor(loop)}{self.lam(lam, loop)}"), frozenset({lam})

    def spread(self, r: Reduction, lam: str, over: str, stage: int, blocks: list) -> str:
        """lambda passed back through mean() or sum(): outer * lambda summed over the units it lives
        on, per batch member (GradientModule._through's sum). (No reduction sits inside another's
        argument: the compiled forward refuses that, so r.via is None.)"""
        outer = self.factor(r.outer, stage, blocks)(ReverseLoop(over))
        total = self.namer.fresh(f"total_{len(self.totals)}")
        self.totals.append(total)
        divisor = self.width(self.argument_population(r.argument, over)) if r.kind == "mean" else None
        blocks.append(Spread(total, over, f"{outer}{lam}[m, j]", frozenset({lam}), divisor))
        return total

    def argument_population(self, argument: sympy.Expr, default: str) -> str:
        owners = sorted(self.population_of[x.name] for x in argument.free_symbols
                        if x.name in self.population_of and x.name not in self.scalars)
        return owners[0] if owners else default

    def term_population(self, t: Term) -> str:
        """The units a term is summed over: its reader's, or a reduction argument's."""
        reader = self.population(t.adjoint)
        return reader if t.reduction is None else self.argument_population(t.reduction.argument, reader)

    def add_item(self, blocks: list, population: str, item_of: Callable[[list], Item]) -> None:
        """An element-wise statement into the loop of its population (a new loop after a matmul or reduction)."""
        before = len(blocks)
        item = item_of(blocks)
        if len(blocks) > before or not blocks or not isinstance(blocks[-1], ReverseLoop) or \
                blocks[-1].population != population:
            blocks.append(ReverseLoop(population))
        blocks[-1].items.append(item)

    def sum_item(self, target: str, mode: str, terms, population: str, blocks: list, seed: str = "") -> None:
        def item_of(blocks):
            parts = [self.term(t, blocks) for t in terms]
            reads = frozenset().union(*(r for _, r in parts))
            return Item(target, mode, lambda loop: " + ".join(([seed] if seed else []) +
                                                              [code(loop) for code, _ in parts]) or "0.0", reads)
        self.add_item(blocks, population, item_of)

    def accumulator(self, name: str, population: str) -> str:
        key = (name, population)
        if key not in self.accumulators:
            self.accumulators[key] = self.derived(f"acc_*_{len(self.accumulators)}", name)
        return self.accumulators[key]

    def param_items(self, s: ParamAdjoint, blocks: list) -> None:
        """lambda(parameter or invariant) += terms, element-wise over the steps, per population of its readers."""
        populations = dict.fromkeys(self.term_population(t) for t in s.terms)
        for population in populations:
            terms = [t for t in s.terms if self.term_population(t) == population]
            self.sum_item(self.accumulator(s.name, population), "add", terms, population, blocks)

    def _observed_reverse(self) -> list:
        """At a record step whose computed variables have cotangents: their reverse (step.Observation)."""
        blocks: list = []
        cotangents = set(self.cotangent_names())
        for a in self.observed.observed:
            population = self.population(a.value)
            seed = self._cotangent(a.value.name) if a.value.name in cotangents else ""
            self.sum_item(self.adjoint(a.value), "set", a.terms, population, blocks, seed)
        for a in self.observed.into_states:
            self.sum_item(self.derived("into_*", a.value.name), "set", a.terms, self.population_of[a.value.name], blocks)
        for p in self.observed.params:
            self.param_items(p, blocks)
        for w in self.observed.weights:  # this record step's source, for the weights' sum after the segment
            rows = self.derived("source_rows_*", w.coupling.name)
            source = self.element(w.source, ReverseLoop(""))
            self.add_item(blocks, self.population(w.source),
                          lambda blocks, rows=rows, source=source: Item(rows, "row", lambda loop: source, frozenset()))
        return blocks

    def _cotangent(self, name: str) -> str:
        return f"({self.derived('cot_*', name)}[row, b, j] if {self.derived('has_cot_*', name)} else 0.0)"

    def cotangent_flags(self) -> list[str]:
        """Per reverse step: whether each cotangent has a row for it (a test outside the loops)."""
        return [f"{self.derived('has_cot_*', name)} = row >= 0 and {cot}.shape[0] > 0"
                for name, cot in self.cotangent_args()]

    def _seeds(self) -> list:
        """Each new state's adjoint: what the step after passes back, plus the record row's
        cotangent and what the recorded computed variables add, times the resets' keep (0 where
        an event reset the state: its reset value is a constant)."""
        blocks: list = []
        into = {a.value.name for a in self.observed.into_states}
        keeps = {}
        for s in self.reverse.statements:
            if isinstance(s, ResetAdjoint):
                keeps.setdefault(s.state, []).append(s.keep)
        for name in self.system.states:
            parts = [f"{self.adjoint(Value(name, 'state', 0))}[m, j]", self._cotangent(name)]
            if name in into:
                parts.append(f"({self.derived('into_*', name)}[m, j] if obs_step else 0.0)")
            factors = [self.factor(keep, 0, blocks) for keep in keeps.get(name, ())]
            self.add_item(blocks, self.population_of[name],
                          lambda blocks, parts=parts, factors=factors, name=name: Item(
                              self.adjoint(Value(name, "new")), "set",
                              lambda loop: "".join(f(loop) for f in factors) + "(" + " + ".join(parts) + ")",
                              frozenset()))
        return blocks

    def _reverse(self, statements, blocks: list) -> list:
        for s in statements:
            if isinstance(s, Adjoint):
                self.sum_item(self.adjoint(s.value), "set", s.terms, self.population(s.value), blocks)
            elif isinstance(s, ParamAdjoint):
                self.param_items(s, blocks)
            elif isinstance(s, DriveAdjoint):
                self.sum_item(self.derived("lam_drive_rows_*", s.state), "row", [Term(v) for v in s.values],
                              self.population_of[s.state], blocks)
            elif not isinstance(s, (ResetAdjoint, WeightAdjoint)):  # (resets: in the seeds; weights: rows)
                raise UnsupportedFeatureError(f"the compiled backend's reverse sweep has no statement {type(s).__name__}")
        return blocks

    def _lam_stored(self, blocks) -> set[str]:
        """Adjoints read by another block than the loop that defines them, or after the step."""
        owner: dict[str, int] = {}
        stored = {self.adjoint(Value(n, "state", 0)) for n in self.system.states}
        stored |= {self.adjoint(w.product) for w in self.weight_adjoints() + self.observed.weights}
        stored |= {self.derived("into_*", a.value.name) for a in self.observed.into_states}
        for index, block in enumerate(blocks):
            if isinstance(block, ReverseLoop):
                for item in block.items:
                    stored |= {name for name in item.reads if owner.get(name, index) != index}
                    owner.setdefault(item.target, index)
            elif isinstance(block, Spread):
                stored |= block.reads
            elif isinstance(block, Transposed):
                stored.add(block.lam)
        return stored

    # -- printing ---------------------------------------------------------------------------

    def reverse_lines(self) -> list[str]:
        return [line for block in self.step_blocks for line in self.reverse_block_lines(block)]

    def observed_reverse_lines(self) -> list[str]:
        return [line for block in self.observed_blocks for line in self.reverse_block_lines(block)]

    def reverse_block_lines(self, block) -> list[str]:
        if isinstance(block, Transposed):
            return ["if bs == 1:  # one member: gemv",
                    f"    np.dot({block.lam}[0], {block.matrix}, {block.out}[0])",
                    "else:  # the members at once: gemm",
                    f"    np.dot({block.lam}, {block.matrix}, {block.out})"]
        if isinstance(block, Spread):
            divide = f" / {block.divisor}" if block.divisor else ""
            return ["for m in range(bs):", "    b = b0 + m", "    acc = 0.0",
                    f"    for j in range({self.width(block.population)}):", f"        acc += {block.code}",
                    f"    {block.total}[m] = acc{divide}"]
        if isinstance(block, ReverseLoop):
            body = [line for item in block.items for line in self.item_lines(item, block)]
            return ["for m in range(bs):", "    b = b0 + m", f"    for j in range({self.width(block.population)}):"] + \
                [f"        {line}" for line in body]
        return self.block_lines(block)  # a mean()/sum() a factor reads, computed again

    def item_lines(self, item: Item, loop: ReverseLoop) -> list[str]:
        code = item.code(loop)
        if item.mode == "add":
            return [f"{item.target}[m, j] += {code}"]
        if item.mode == "row":
            return [f"{item.target}[i, m, j] = {code}"]
        loop.defined.add(item.target)
        local = self.derived("l_*", item.target)
        return [f"{local} = {code}"] + ([f"{item.target}[m, j] = {local}"] if item.target in self.lam_stored else [])

    # -- the kernel's arrays and grad()'s tables ---------------------------------------------

    def weight_adjoints(self) -> list[WeightAdjoint]:
        return [s for s in self.reverse.statements if isinstance(s, WeightAdjoint)]

    def weight_rows(self) -> list[tuple[str, str, str, str]]:
        """(adjoint of the product (bound to its row), its rows, width, the source's rows over the
        segment (a Python expression, steps first)) of each product of the step whose matrix is trained."""
        out = []
        for s in self.weight_adjoints():
            source = s.source
            if source.role == "state" and source.stage == 0:
                rows = f"{self.derived('states_*', source.name)}[:stop - start]"
            else:
                rows = f"{self.derived('rows_*', self.buffer(source))}[:stop - start]"
            out.append((self.adjoint(s.product), self.derived("rows_*", self.adjoint(s.product)),
                        self.coupling_width(s.product), rows))
        return out

    def observed_weight_rows(self) -> list[tuple[str, str, str, str, str]]:
        """(adjoint of the observation's product, its rows, its width, the source's rows, their width)."""
        return [(self.adjoint(w.product), self.derived("lam_rows_*", w.coupling.name), self.coupling_width(w.product),
                 self.derived("source_rows_*", w.coupling.name), self.width(self.population(w.source)))
                for w in self.observed.weights]

    def gram_pairs(self) -> list[tuple[str, str, str, bool]]:
        """(gram, lambda rows, source rows, whether the observation's) of every trained product, for
        one _outer_sum per segment (the observation's only where computed variables have cotangents)."""
        step = [(self.derived("gram_*", s.coupling.name), f"{rows}[:stop - start]", source, False)
                for s, (_, rows, _, source) in zip(self.weight_adjoints(), self.weight_rows())]
        return step + [(self.derived("gram_*", w.coupling.name), f"{rows}[:stop - start]", f"{source}[:stop - start]",
                        True) for w, (_, rows, _, source, _) in zip(self.observed.weights, self.observed_weight_rows())]

    def drive_rows(self) -> list[tuple[str, str, str]]:
        """(rows of a drive's adjoint, the drive's adjoint over the segment as its chain reads it, width)."""
        return [(self.derived("lam_drive_rows_*", n), self.derived("lam_drive_*", n), self.width(self.population_of[n]))
                for n in self.reverse.drives]

    def carries(self) -> list[tuple[str, str, str]]:
        """(state, the adjoint of its value at a step's start (members, n): y0's at the end, width)."""
        return [(n, self.adjoint(Value(n, "state", 0)), self.width(self.population_of[n])) for n in self.system.states]

    def accumulator_arrays(self) -> list[tuple[str, str, str, str]]:
        """(parameter or invariant, its adjoint, array (members, n) summed element-wise over all steps, width)."""
        return [(name, self.adjoint(name), array, self.width(population))
                for (name, population), array in self.accumulators.items()]

    def step_arrays(self) -> list[tuple[str, str]]:
        """(array, width) of the adjoints stored within a step (not rows, not carries) and the transposed products."""
        rows = {lam for lam, *_ in self.weight_rows() + self.observed_weight_rows()}
        carries = {lam for _, lam, _ in self.carries()}
        found = {}
        for block in self.observed_blocks + self.step_blocks:
            if isinstance(block, ReverseLoop):
                for item in block.items:
                    if item.mode == "set" and item.target in self.lam_stored and item.target not in rows | carries:
                        found[item.target] = self.width(block.population)
            elif isinstance(block, Transposed):
                found[block.out] = f"{block.matrix}.shape[1]"
        return list(found.items())

    def cotangent_names(self) -> list[str]:
        """The recorded variables a cotangent may be given for: the states, the computed outputs."""
        outputs = set(self.system.outputs)
        return list(self.system.states) + [v.name for v in self.observed.observation.values() if v.name in outputs]

    def cotangent_args(self) -> list[tuple[str, str]]:
        return [(name, self.derived("cot_*", name)) for name in self.cotangent_names()]

    def unwritten_records(self) -> list[str]:
        """The record arguments the forward blocks write (spike counts, computed variables): no rows in grad()."""
        return [self.derived("rec_*", n) for n in [e.name for e in self.system.events] +
                [n for n, _ in self.system.algebraics]]

    def grad_kernel_args(self) -> list[str]:
        return (["forward_pass", "reverse_pass", "start", "nsteps", "sampling_steps", "t0", "dt", "observe"] +
                [w for _, w in self.populations()] + [rows for _, rows, _, _ in self.states_rows()] +
                [i for i, _, _ in self.param_args()] +
                self.matrix_kernel_args() +
                [w for w, _, _ in self.input_args()] + [d for d, _ in self.drive_args()] + self.unwritten_records() +
                [rows for _, rows, _, _ in self.kept_rows()] + [rows for _, rows, _, _ in self.weight_rows()] +
                [x for _, rows, _, source, _ in self.observed_weight_rows() for x in (rows, source)] +
                [rows for rows, _, _ in self.drive_rows()] + [lam for _, lam, _ in self.carries()] +
                [array for _, _, array, _ in self.accumulator_arrays()] + [cot for _, cot in self.cotangent_args()])

    def row_bindings(self) -> list[str]:
        """Step i's rows as the blocks name them: the kept forward values, the products' adjoints."""
        return [f"{buffer} = {rows}[i]" for buffer, rows, _, _ in self.kept_rows()] + \
            [f"{lam} = {rows}[i]" for lam, rows, *_ in self.weight_rows() + self.observed_weight_rows()]

    def rows_per_step(self) -> int:
        return len(self.system.states) + len(self.kept) + len(self.weight_rows()) + \
            2 * len(self.observed_weight_rows()) + len(self.drive_rows())
