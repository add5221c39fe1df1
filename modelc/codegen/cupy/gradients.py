"""The CuPy backend's reverse sweep: grad() from the statements of codegen/adjoint.py, in kernels.

grad() has the NumPy backend's contract and checkpointing (the states at the start of each
segment; each segment integrated again, then swept backwards). Nothing is differentiated here:
this module lays out, as *ops* of one step, what the step program (forward, recomputed) and the
reverse step (adjoint.py) say, and prints them with the C printer:

    Elem(group, key, expr)      one element per thread: key = expr (or key += expr)
    MatMul(out, source, W, T)   out = source @ (scale*W)^T (a coupling's product), or source @
                                (scale*W) ((scale*W)^T lambda: the adjoint of its source)
    Reduce(out, argument, ...)  one value per batch member: the sum (or mean) of the argument over
                                a group's units (mean()/sum() forward; an adjoint through one)

Two strategies print the same ops. "graph": consecutive Elems of a group between two barriers
are ONE fused kernel, matmuls are cuBLAS, reductions the mc_reduce kernel, and each repeated
segment is captured in a CUDA graph. "block" (one population group that fits a thread block):
one kernel runs a whole segment, a block per batch member, barriers in shared memory.

A key names what an op computes: ("v", Value) a forward value, ("lam", Value) its adjoint,
("T", product) the transposed product of the product's adjoint, ("acc", parameter, group) a
parameter's (or a loop invariant's) adjoint summed element-wise over the steps, ("drive", state)
this step's row of a drive's adjoint, ("carry", state) the adjoint the step after passes back,
("cot", output) this record row's cotangent, ("into", state) what a step's recorded computed
variables add to a new state's adjoint, ("red", kind, argument) a forward mean()/sum() (and
("arg", ...) its argument), ("spread", k)/("total", k) an adjoint on its way back through one.
A key lives in a register, and in a device array when another kernel, a later step or the host
reads it. Per chunk, on the host side: the drives' and the weights' adjoints (one matmul per
product), like the NumPy backend; at the end, the invariants' chain.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from ...equations import TIME, PopMean, PopSum
from ...errors import UnsupportedFeatureError
from ..adjoint import Adjoint, DriveAdjoint, ParamAdjoint, ReverseObservation, ReverseStep, Term, WeightAdjoint
from ..c_printer import CPrinter, helpers_of
from ..layout import matrix_populations
from ..plan import DT, rational
from ..printers import NumPyPrinter
from ..step import OBSERVE, Combine, Evaluate, Product, Rate, Value
from .kernel import Kernel, block
from .kernels import finish
from .loops import BLOCK_INDEX
from .steps import NO_WORK, refuse_statement


ROW = "(mc_step + 1) % mc_sampling == 0 ? (mc_step + 1) / mc_sampling - 1 : -1"   # a step's record row, or -1


@dataclass(frozen=True)
class Elem:
    group: int
    key: tuple
    expr: sympy.Expr
    accumulate: bool = False


@dataclass(frozen=True)
class MatMul:
    out: tuple
    source: tuple
    coupling: str
    transpose: bool


@dataclass(frozen=True)
class Reduce:
    out: tuple
    argument: tuple
    group: int                  # the units summed over
    divisor: int | None         # a mean: divided by the units of this group


@dataclass(frozen=True)
class Storage:
    """Where a key lives between kernels: its device array and how a step indexes it."""

    array: str          # the env key of the array
    rows: str           # "segment" (K rows (+1 for states) of (B, n)), "one" ((B, n), reused every step)
    offset: int = 0     # segment rows: the row is the step inside the segment + offset
    group: int = 0


class GradientKernels:
    """The ops, kernels and tables of grad() for one CuPy module."""

    def __init__(self, m, reverse: ReverseStep, observed: ReverseObservation):
        self.m, self.reverse, self.observed = m, reverse, observed
        self.program, self.observation = reverse.program, observed.observation
        self.system, self.layout = m.system, m.layout
        self.matrix_target = {w: target for w, (target, _) in matrix_populations(self.system).items()}
        self.states = {s.name: s for s in self.program.plan.states}
        self.symbols: dict[tuple, sympy.Symbol] = {}
        self.keys: dict[str, tuple] = {}
        self.idents: dict[tuple, str] = {}
        self.groups: dict[tuple, int] = {}
        self.weights: list[WeightAdjoint] = []
        self.couplings = {c.name: c for c in self.program.plan.couplings}
        self.couplings.update({s.coupling.name: s.coupling for s in self.observation.statements
                               if isinstance(s, Product)})
        self.available: set[tuple] = set()   # reductions an op list has computed already in the step
        self.forward = self._forward(self.program.statements, self.program.bindings)
        computed = set(self.available)
        main = self._reverse(reverse.statements)
        self.available = set(computed)
        self.reverse_plain = self._seeds(observed=False) + main
        self.reverse_observed = (self._forward(self.observation.statements, lambda k: self.observation.bindings())
                                 + self._observation() + self._seeds(observed=True) + main)
        self._prune()
        self.storage = self._storage()
        self.kernels: list[Kernel] = []
        lists = {"forward": self.forward, "reverse": self.reverse_plain, "observed": self.reverse_observed}
        self.ops = {name: self._kernels(name, ops) for name, ops in lists.items()}
        self.pipelines = self._pipelines(lists)
        self.coupling_idents = {name: self.m.namer.fresh(name.split("/")[-1]) for name in self.couplings}
        if len(self.layout.groups) == 1:
            self.kernels.append(self._block_kernel())

    # -- keys ------------------------------------------------------------------------------

    def symbol(self, key: tuple) -> sympy.Symbol:
        if key not in self.symbols:
            name = f"mc\0{len(self.symbols)}"   # no IR name contains a NUL
            self.symbols[key] = sympy.Symbol(name)
            self.keys[name] = key
            self.idents[key] = self.m.namer.fresh(self._readable(key))
        return self.symbols[key]

    def _readable(self, key: tuple) -> str:
        """v_rate1 (a forward value: its variable, role and stage), lam_v_rate1 (its adjoint), acc_tau, ..."""
        kind, what = key[0], key[1]
        if isinstance(what, Value):
            base = self.m.ident(what.name) if what.name in self.m.names else what.name.split("/")[-1]
            base = f"{base}_{what.role}{what.stage if what.stage >= 0 else ''}"
        else:
            base = self.m.ident(what) if what in self.m.names else str(what).split("/")[-1]
        return base if kind == "v" else f"{kind}_{base}"

    def _group(self, key: tuple, expr: sympy.Expr | None = None) -> int:
        """A key's population group: its variable's, a product's target's, or what its expression reads."""
        if key in self.groups:
            return self.groups[key]
        what = key[1]
        name = what.name if isinstance(what, Value) else what
        owner = self.layout.population_of.get(name) if isinstance(name, str) else None
        if owner is None and isinstance(what, Value) and name in self.couplings:
            owner = self.matrix_target.get(self.couplings[name].matrix)
        group = self.layout.label_group[owner] if owner is not None else self._group_of(expr)
        if group is None:
            raise UnsupportedFeatureError(f"the CuPy backend cannot tell which population '{name}' belongs to "
                                          "in the backward pass", None, "compute gradients with backend='numpy'")
        self.groups[key] = group
        return group

    def _group_of(self, expr: sympy.Expr | None, default: int | None = None) -> int | None:
        """The group of the first key or population variable an expression reads."""
        for x in sorted(expr.free_symbols, key=str) if expr is not None else ():
            key = self.keys.get(x.name)
            if key in self.groups:
                return self.groups[key]
            if x.name in self.layout.population_of:
                return self.layout.label_group[self.layout.population_of[x.name]]
        return default

    def _elem(self, key: tuple, expr: sympy.Expr, ops: list, accumulate: bool = False, group: int | None = None):
        """key = expr (or +=) as an Elem of ops; its mean()/sum() over a population computed first."""
        self.symbol(key)
        if group is not None:
            self.groups.setdefault(key, group)
        group = self._group(key, expr)
        ops.append(Elem(group, key, self._reduced(sympy.sympify(expr), group, ops), accumulate))

    def _reduced(self, expr: sympy.Expr, group: int, ops: list) -> sympy.Expr:
        """expr with each mean(g)/sum(g) replaced by its value per batch member: g is computed
        element-wise, then reduced by the mc_reduce kernel (once per step: a reduction the
        forward computed is read from its rows by the reverse step)."""
        if not expr.has(PopMean, PopSum):
            return expr

        def walk(e):
            if isinstance(e, (PopMean, PopSum)):
                argument = walk(e.args[0])
                kind = "mean" if isinstance(e, PopMean) else "sum"
                key = ("red", kind, argument)
                if key not in self.available:
                    units = self._group_of(argument, group)
                    self._elem(("arg", kind, argument), argument, ops, group=units)
                    self.symbol(key)
                    self.groups[key] = units
                    ops.append(Reduce(key, ("arg", kind, argument), units, units if kind == "mean" else None))
                    self.available.add(key)
                return self.symbol(key)
            args = [walk(a) for a in e.args]
            return e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e

        return walk(expr)

    def _bound(self, expr: sympy.Expr, bindings: dict) -> sympy.Expr:
        """expr with every name the stage binds replaced by its value's key."""
        found = {x: self.symbol(("v", bindings[x.name])) for x in expr.free_symbols if x.name in bindings}
        return expr.xreplace(found) if found else expr

    # -- the forward step, recomputed --------------------------------------------------------

    def _forward(self, statements, bindings) -> list:
        ops: list = []
        for s in statements:
            if isinstance(s, NO_WORK):
                continue
            if isinstance(s, Evaluate):
                self._elem(("v", s.target), self._bound(s.expr, bindings(s.stage)), ops)
            elif isinstance(s, Combine):
                expr = self.symbol(("v", s.base)) + sum((rational(a) * DT * self.symbol(("v", v)) for a, v in s.terms),
                                                        sympy.Integer(0))
                self._elem(("v", s.target), expr, ops)
            elif isinstance(s, Product):
                source = bindings(s.stage).get(s.coupling.source.name)
                if source is None:
                    raise UnsupportedFeatureError(f"the CuPy backend's backward pass couples only computed values "
                                                  f"('{s.coupling.matrix}' multiplies '{s.coupling.source}')", None,
                                                  "compute gradients with backend='numpy'")
                self.symbol(("v", s.target))
                self._group(("v", s.target))
                ops.append(MatMul(("v", s.target), ("v", source), s.coupling.name, False))
            elif isinstance(s, Rate):
                self._elem(("v", s.target), self._rate(s, bindings), ops)
            else:
                refuse_statement(s)
        return ops

    def _rate(self, s: Rate, bindings) -> sympy.Expr:
        """linear*x + products + rest + this step's drive (the plan's, at the step's start time)."""
        expr = self._bound(s.linear, bindings(s.stage)) * self.symbol(("v", s.state))
        expr += sum((self.symbol(("v", p)) for p in s.products), sympy.Integer(0))
        if s.rest is not None:
            expr += self.symbol(("v", s.rest))
        if s.drive:
            expr += self._bound(self.states[s.state.name].drive, {TIME.name: Value(TIME.name, "time", 0)})
        return expr

    # -- the reverse step ---------------------------------------------------------------------

    def _term(self, t: Term, group: int, ops: list) -> sympy.Expr:
        """One term of an adjoint of the given group (the matmul or reduction it needs added to ops)."""
        if t.transpose is not None:  # (scale*W)^T lam(product): the source's units
            self.symbol(("T", t.adjoint))
            self.groups.setdefault(("T", t.adjoint), group)
            ops.append(MatMul(("T", t.adjoint), ("lam", t.adjoint), t.transpose.name, True))
            return self.symbol(("T", t.adjoint))
        bindings = self.observation.bindings() if t.stage == OBSERVE else self.program.bindings(t.stage)
        lam = self.symbol(("lam", t.adjoint))
        if t.reduction is not None:
            lam = self._through(t.reduction, lam, self._group(("v", t.adjoint)), bindings, group, ops)
        return self._bound(t.factor, bindings) * lam

    def _through(self, r, lam: sympy.Expr, over: int, bindings: dict, group: int, ops: list) -> sympy.Expr:
        """lam passed back through mean()/sum() (through the reductions it sits in first): outer*lam
        summed over the units it lives on (`over`), per batch member, for every unit of the argument."""
        if r.via is not None:
            lam = self._through(r.via, lam, over, bindings, group, ops)
            over = self._group_of(self._bound(r.via.argument, bindings), group)
        spread = ("spread", len(self.symbols))
        self._elem(spread, self._bound(r.outer, bindings) * lam, ops, group=over)
        units = self._group_of(self._bound(r.argument, bindings), group)
        total = ("total", spread[1])
        self.symbol(total)
        self.groups[total] = units
        ops.append(Reduce(total, spread, over, units if r.kind == "mean" else None))
        return self.symbol(total)

    def _sum(self, terms, group: int, ops: list) -> sympy.Expr:
        return sum((self._term(t, group, ops) for t in terms), sympy.Integer(0))

    def _reverse(self, statements) -> list:
        ops: list = []
        for s in statements:
            if isinstance(s, Adjoint):
                group = self._group(("v", s.value))
                self._elem(("lam", s.value), self._sum(s.terms, group, ops), ops, group=group)
            elif isinstance(s, ParamAdjoint):
                self._param(s, ops)
            elif isinstance(s, DriveAdjoint):
                total = sum((self.symbol(("lam", v)) for v in s.values), sympy.Integer(0))
                self._elem(("drive", s.state), total, ops, group=self._group(("v", Value(s.state, "new"))))
            elif isinstance(s, WeightAdjoint):
                self.weights.append(s)
            else:  # (an event's reverse, ...): never left out silently
                refuse_statement(s)
        return ops

    def _param(self, s: ParamAdjoint, ops: list) -> None:
        """lam(parameter) += terms, summed per element of each group its readers belong to."""
        for group in dict.fromkeys(self._group(("v", t.adjoint)) for t in s.terms):
            terms = [t for t in s.terms if self._group(("v", t.adjoint)) == group]
            self._elem(("acc", s.name, group), self._sum(terms, group, ops), ops, accumulate=True, group=group)

    def _seeds(self, observed: bool) -> list:
        """The adjoint of each new state: what the step after passes back, plus this row's cotangent
        (and, at a record step with computed variables differentiated, what they add)."""
        ops: list = []
        into = {a.value.name for a in self.observed.into_states} if observed else set()
        for name in self.system.states:
            group = self._group(("v", Value(name, "new")))
            expr = self.symbol(("carry", name)) + self.symbol(("cot", name))
            self.groups.setdefault(("carry", name), group)
            self.groups.setdefault(("cot", name), group)
            if name in into:
                expr += self.symbol(("into", name))
            self._elem(("lam", Value(name, "new")), expr, ops, group=group)
        return ops

    def _observation(self) -> list:
        """At a record step: the reverse of the recorded computed variables (step.Observation)."""
        ops: list = []
        outputs = set(self.system.outputs)
        for a in self.observed.observed:
            group = self._group(("v", a.value))
            expr = self._sum(a.terms, group, ops)
            if a.value.name in outputs:
                self.groups.setdefault(("cot", a.value.name), group)
                expr += self.symbol(("cot", a.value.name))
            self._elem(("lam", a.value), expr, ops, group=group)
        for a in self.observed.into_states:
            group = self._group(("v", a.value))
            self._elem(("into", a.value.name), self._sum(a.terms, group, ops), ops, group=group)
        for p in self.observed.params:
            self._param(p, ops)
        self.weights += self.observed.weights
        return ops

    # -- where keys live ----------------------------------------------------------------------

    def _kept(self) -> set:
        """Keys that leave the step: new states, the adjoint passed back, rows and sums the host reads."""
        kept = {("lam", Value(n, "state", 0)) for n in self.system.states}
        kept |= {("v", Value(n, "new")) for n in self.system.states}
        kept |= {("lam", w.product) for w in self.weights} | {("v", w.source) for w in self.weights}
        return kept | {op.key for ops in (self.forward, self.reverse_observed) for op in ops
                       if isinstance(op, Elem) and (op.accumulate or op.key[0] == "drive")}

    def _prune(self) -> None:
        """Drop the element-wise values nothing reads (a recorded computed variable recomputed for
        the observation whose adjoint needs only others)."""
        lists = ("forward", "reverse_plain", "reverse_observed")
        while True:
            read = set(self._kept())
            for name in lists:
                for op in getattr(self, name):
                    if isinstance(op, Elem):
                        read |= {self.keys[x.name] for x in op.expr.free_symbols if x.name in self.keys}
                    else:
                        read.add(op.source if isinstance(op, MatMul) else op.argument)
            unread = [[op for op in getattr(self, name) if isinstance(op, Elem) and op.key not in read] for name in lists]
            if not any(unread):
                return
            for name, drop in zip(lists, unread):
                setattr(self, name, [op for op in getattr(self, name) if op not in drop])

    def _storage(self) -> dict[tuple, Storage]:
        """Every key some other kernel, a matmul, a later step or the host reads: its array."""
        forced = self._kept()
        for ops in (self.forward, self.reverse_plain, self.reverse_observed):
            forced |= self._read_elsewhere(ops)
        storage = {}
        for key in forced:
            what = key[1]
            if key[0] in ("red", "total"):  # one value per batch member: per step of the segment, or this step's
                storage[key] = Storage(f"mc_a_{self.idents[key]}", "member_segment" if key[0] == "red" else "member_one",
                                       0, self._group(key))
            elif key[0] == "v" and isinstance(what, Value) and (what.role == "new" or
                                                              (what.role == "state" and what.stage == 0)):
                storage[key] = Storage(self._states_array(what.name), "segment", 1 if what.role == "new" else 0,
                                       self._group(key))
            elif key[0] == "v" or key[0] == "drive" or (key[0] == "lam" and key in
                                                         {("lam", w.product) for w in self.weights}):
                storage[key] = Storage(f"mc_a_{self.idents[key]}", "segment", 0, self._group(key))
            else:
                storage[key] = Storage(f"mc_a_{self.idents[key]}", "one", 0, self._group(key))
        for name in self.system.states:  # the adjoint a step passes back, read by the step before
            self.symbol(("carry", name))
            storage[("carry", name)] = storage[("lam", Value(name, "state", 0))]
        return storage

    def _states_array(self, name: str) -> str:
        return f"mc_S_{self.m.ident(name)}"

    def _read_elsewhere(self, ops) -> set:
        """Keys read outside the kernel that computes them (a fused kernel's run ends at a matmul)."""
        written: dict[tuple, tuple] = {}
        found = set()
        for run, part in enumerate(_runs(ops)):
            if isinstance(part, MatMul):
                found |= {part.source, part.out}
                continue
            if isinstance(part, Reduce):
                found |= {part.argument, part.out}
                continue
            for op in part:
                for x in op.expr.free_symbols:
                    key = self.keys.get(x.name)
                    if key is not None and key[0] not in ("cot",) and written.get(key) != (run, op.group) \
                            and not _is_time(key):
                        found.add(key)
                written[op.key] = (run, op.group)
        return found

    # -- kernels ------------------------------------------------------------------------------

    def _kernels(self, what: str, ops) -> list[tuple]:
        """The launches of one op list: ("kernel", name) and ("matmul", out, source, coupling, transposed)."""
        launches = []
        for part in _runs(ops):
            if isinstance(part, MatMul):
                launches.append(("matmul", self._where(part.out), self._where(part.source), part.coupling, part.transpose))
                continue
            if isinstance(part, Reduce):
                launches.append(("reduce", self._where(part.out), self._where(part.argument), part.group, part.divisor))
                continue
            for group in dict.fromkeys(op.group for op in part):
                k = self._kernel(f"mc_grad_{what}{len(launches)}_g{group}", group,
                                 [op for op in part if op.group == group], what)
                self.kernels.append(k)
                launches.append(("kernel", k.name))
        return launches

    def _pipelines(self, lists: dict) -> dict:
        """The graph strategy's steps with one kernel fewer: the element-wise work that ends a step
        and the work that begins the next one (before its first matmul or reduction) in ONE
        kernel. Per op list with a barrier: its head (the first step's), middle, tail alone (the
        segment's last step) and tails merged with the head of each list that may come next."""
        ends = {}
        for what, ops in lists.items():
            parts = _runs(ops)
            if len(parts) >= 3 and isinstance(parts[0], list) and isinstance(parts[-1], list):
                ends[what] = parts
        nexts = {"forward": ("forward",), "reverse": ("reverse", "observed"), "observed": ("reverse", "observed")}
        found = {}
        for what, parts in ends.items():
            launches = self.ops[what]
            first, last = (len(dict.fromkeys(op.group for op in part)) for part in (parts[0], parts[-1]))
            tails = {}
            for following in nexts[what]:
                if following in ends:
                    tails[following] = [("kernel", k.name) for k in self._merged(what, following, parts[-1],
                                                                                  ends[following][0])]
            found[what] = {"head": launches[:first], "middle": launches[first:-last], "tail": launches[-last:],
                           "tails": tails}
        return found

    def _merged(self, what: str, following: str, tail: list[Elem], head: list[Elem]) -> list[Kernel]:
        """One kernel per group: the tail of a step, then (unless mc_next < 0) the head of step mc_next."""
        kernels = []
        for group in dict.fromkeys(op.group for op in tail + head):
            k = Kernel(f"mc_grad_{what}_then_{following}_g{group}", "elem", group,
                       f"grad(): the end of a {what} step and the beginning of the next ({following}) step")
            k.arg("long long", f"mc_E@{group}")
            k.arg("long long", f"mc_n@{group}")
            body: list[str] = []
            local: dict = {}
            for op in tail:
                if op.group == group:
                    self._emit(k, op, local, body)
            inner: list[str] = []
            local = {}
            ops = [op for op in head if op.group == group]
            for op in ops:
                self._emit(k, op, local, inner, own_row=True)
            reads = {self.keys[x.name] for op in ops for x in op.expr.free_symbols if x.name in self.keys}
            step = ["const long long mc_local = mc_next;", "const long long mc_step = mc_base[0] + mc_local;"]
            if any(_is_time(key) and key[1].stage != OBSERVE for key in reads):
                step.append("const double mc_tstep = mc_t0 + (double)mc_step * mc_dt64;")
            if any(key[0] == "cot" for key in reads):
                step.append(f"const long long mc_row = {ROW};")
            k.use("step")
            k.body = body + block(step + ["(void)mc_step;"] + inner, "if (mc_next >= 0) {")
            finish(k)
            k.top += ["(void)mc_step;"] + (["(void)mc_tstep;"] if "step time" in k.uses else [])
            k.arg("long long", "mc_next")
            self.kernels.append(k)
            kernels.append(k)
        return kernels

    def _kernel(self, name: str, group: int, ops: list[Elem], what: str) -> Kernel:
        k = Kernel(name, "elem", group, f"grad(), {what} step: {len(ops)} element-wise statements (group {group})")
        k.arg("long long", f"mc_E@{group}")
        k.arg("long long", f"mc_n@{group}")
        local: dict[tuple, str] = {}
        body: list[str] = []
        for op in ops:
            self._emit(k, op, local, body)
        k.body = body
        return finish(k)

    def _emit(self, k: Kernel, op: Elem, local: dict, body: list[str], in_block: bool = False,
              own_row: bool = False) -> None:
        """One Elem in C: a register, and its memory when another kernel or step reads it. (In the
        block kernel, threads past the population's end compute but never write.)"""
        names = {x.name: self._read(k, x.name, local, body, in_block or own_row)
                 for x in sorted(op.expr.free_symbols, key=str)}
        k.helpers |= helpers_of(op.expr)
        text = CPrinter(names, self.m.dtype).doprint(op.expr)
        guard = "if (mc_active) " if in_block else ""
        if op.accumulate:
            body.append(f"{guard}{self._memory(k, op.key, write=True)} += {text};")
            return
        ident = self.idents[op.key]
        body.append(f"const REAL {ident} = {text};")
        local[op.key] = ident
        if self._stored(op.key, in_block):
            body.append(f"{guard}{self._memory(k, op.key, write=True)} = {ident};")

    def _stored(self, key: tuple, in_block: bool) -> bool:
        """Whether a key computed in a kernel is written to memory: when it has some, except, in
        the block kernel, a value of this step alone (only the adjoint passed back leaves it)."""
        if key not in self.storage:
            return False
        return not in_block or not self.storage[key].rows.endswith("one") or \
            key in {("lam", Value(n, "state", 0)) for n in self.system.states}

    # -- the block kernel: a whole segment in one launch (one population group that fits a block) --

    def _block_kernel(self) -> Kernel:
        """One thread block per batch member, a thread per unit: the segment integrated again
        step by step, then swept backwards, the ops of each step in order; a matmul is a mat-vec
        over shared memory, a reduction a tree in shared memory (the forward strategy
        "persistent"'s way). Values go through the same device arrays as the other strategy's.
        Without any barrier, a thread per element of any number of them (kind "flat")."""
        flat = not any(isinstance(op, (MatMul, Reduce)) for ops in (self.forward, self.reverse_plain,
                                                                     self.reverse_observed) for op in ops)
        k = Kernel("mc_grad_block", "flat" if flat else "block", 0,
                   "grad(): a segment forward again, then backwards, " +
                   ("a thread per element" if flat else "a block per batch member"))
        k.arg("long long", "mc_E@0")
        k.arg("long long", "mc_n@0")
        for key in ("mc_t0", "mc_dt64"):
            k.arg("double", key)
        k.arg("const long long* __restrict__", "mc_base")
        k.arg("long long", "mc_sampling")
        forward, plain, observed = (self._block_body(k, ops) for ops in (self.forward, self.reverse_plain,
                                                                             self.reverse_observed))
        head = ["const long long mc_step = mc_base[0] + mc_local;",
                "const double mc_tstep = mc_t0 + (double)mc_step * mc_dt64;",
                f"const long long mc_row = {ROW};",
                "(void)mc_tstep; (void)mc_row;"]
        k.body = (block(head + block(forward), "for (long long mc_local = 0; mc_local < mc_L; ++mc_local) {")
                  + block(head + block(observed, "if (mc_observed && mc_row >= 0) {") + block(plain, "else {"),
                          "for (long long mc_local = mc_L - 1; mc_local >= 0; --mc_local) {"))
        if flat:  # (every thread is a unit: mc_active is 1, the writes need no guard)
            k.top = ["const long long mc_i = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
                     "if (mc_i >= mc_E) return;", "const long long mc_b = mc_i / mc_n;",
                     "const long long mc_j = mc_i - mc_b * mc_n;", "const int mc_active = 1;",
                     "(void)mc_b; (void)mc_j; (void)mc_active;"] + k.top
        else:
            k.top = ["MODELC_SMEM;"] + BLOCK_INDEX + ["(void)mc_T;  /* (read by reductions only) */"] + k.top
        if "dt" in k.uses:
            k.arg("REAL", "mc_dt")
        k.arg("long long", "mc_L")
        k.arg("long long", "mc_observed")
        return k

    def _block_body(self, k: Kernel, ops) -> list[str]:
        local: dict = {}
        body: list[str] = []
        for op in ops:
            if isinstance(op, Elem):
                self._emit(k, op, local, body, in_block=True)
                continue
            source = op.source if isinstance(op, MatMul) else op.argument
            value = self._read(k, self.symbols[source].name, local, body, True)
            body += ["MODELC_SYNC();", f"mc_smem[mc_tid] = mc_active ? {value} : {self.m.writer.lit(0)};", "MODELC_SYNC();"]
            ident = self.idents[op.out]
            if isinstance(op, MatMul):   # out_j = sum_q (scale*W)[j, q] x_q, or (scale*W)[q, j] lam_q transposed
                weights = k.array(self._matrix_key(op.coupling, not op.transpose))
                body += [f"REAL mc_sum_{ident} = {self.m.writer.lit(0)};",
                         f"for (long long mc_q = 0; mc_q < mc_n; ++mc_q) "
                         f"mc_sum_{ident} += {weights}[mc_q * mc_n + mc_j] * mc_smem[mc_q];",
                         f"const REAL {ident} = mc_sum_{ident};"]
                guard = "if (mc_active) "
            else:
                body += ["for (long long mc_h = mc_T / 2; mc_h > 0; mc_h /= 2) {",
                         "    if (mc_tid < mc_h) mc_smem[mc_tid] += mc_smem[mc_tid + mc_h];",
                         "    MODELC_SYNC();",
                         "}",
                         f"const REAL {ident} = mc_smem[0]" + (" / (REAL)mc_n;" if op.divisor is not None else ";")]
                guard = "if (mc_tid == 0) "
            local[op.out] = ident
            if self._stored(op.out, True):
                body.append(f"{guard}{self._memory(k, op.out, write=True)} = {ident};")
        return body

    def _matrix_key(self, coupling: str, transposed: bool) -> str:
        """The block kernel's copy of a coupling's scaled matrix (transposed: read coalesced forward)."""
        return f"mc_g{'wt' if transposed else 'w'}_{self.coupling_idents[coupling]}"

    def _read(self, k: Kernel, name: str, local: dict, body: list[str], own_row: bool = False) -> str:
        """The C text of a name an op reads: a register, a load, a kernel argument. own_row: the
        enclosing scope computes the step's record row mc_row (else the kernel's top does)."""
        key = self.keys.get(name)
        if key is None:
            return self._constant(k, name, local, body)
        if key in local:
            return local[key]
        ident = self.idents[key]
        if _is_time(key):
            stage = key[1].stage
            text = self.m.writer.time(k, 1, 0) if stage == OBSERVE else \
                self.m.writer.time(k, 0, self.program.stage_times[stage])
        elif key[0] == "cot":  # this step's record row (-1: the step is not recorded)
            cot = k.array(f"mc_cot_{self.m.ident(key[1])}")
            flag = k.arg("long long", f"mc_hc_{self.m.ident(key[1])}")
            k.use("step")
            k.arg("long long", "mc_sampling")
            if not own_row:
                k.load(f"const long long mc_row = {ROW};")
            row = "(mc_row - mc_base[0] / mc_sampling)"   # the device holds the segment's rows only
            text = f"(mc_row >= 0 && {flag} ? {cot}[{row} * mc_E + mc_i] : {self.m.writer.lit(0)})"
        else:
            text = self._memory(k, key)
        body.append(f"const REAL {ident} = {text};")
        local[key] = ident
        return ident

    def _constant(self, k: Kernel, name: str, local: dict, body: list[str]) -> str:
        """dt, an input's value in this step, a scalar (argument) or per-unit constant (load)."""
        if name == DT.name:
            k.use("dt")
            return "mc_dt"
        ident = self.m.ident(name)
        if name in self.system.inputs:
            if name not in local:
                body.append(f"const REAL {ident} = {self.m.writer.input_load(k, name, 'mc_local')};")
                local[name] = ident
            return ident
        if name in self.layout.vectors:
            k.load(f"const REAL {ident} = {k.array(f'mc_p_{ident}')}[mc_i];")
            return ident
        if name in self.system.params or name in self.layout.hoisted:
            if self.system.params.get(name) is not None and self.system.params[name].shape == "matrix":
                raise UnsupportedFeatureError(f"the matrix '{name}' is used element-wise")
            return k.arg("REAL", ident)
        raise UnsupportedFeatureError(f"no value for '{name}' in a CuPy kernel of the backward pass")

    def _where(self, key: tuple) -> tuple[str, str, int]:
        s = self.storage[key]
        return s.array, s.rows, s.offset

    def _memory(self, k: Kernel, key: tuple, write: bool = False) -> str:
        s = self.storage[key]
        array = k.array(s.array, write)
        if s.rows.startswith("member"):
            k.use("batch member")
            return f"{array}[mc_b]" if s.rows == "member_one" else f"{array}[mc_local * (mc_E / mc_n) + mc_b]"
        if s.rows == "one":
            return f"{array}[mc_i]"
        row = "mc_local" if s.offset == 0 else f"(mc_local + {s.offset})"
        return f"{array}[{row} * mc_E + mc_i]"

    def reduces(self) -> bool:
        """Whether grad() launches the mc_reduce kernel."""
        return any(launch[0] == "reduce" for launches in self.ops.values() for launch in launches)

    # -- the host side's tables and lines -------------------------------------------------------

    def arrays(self) -> dict[str, tuple[str, int]]:
        """env key -> (rows, group) of every device array grad() allocates: "states" (K + 1 rows of
        (B, n)), "segment" (K rows), "one" (one (B, n)), "member_segment" (K rows of (B,)), "member_one"."""
        found = {}
        for key, s in self.storage.items():
            rows = "states" if s.array.startswith("mc_S_") else s.rows
            found[s.array] = (rows, s.group)
        return found

    def state_arrays(self) -> dict[str, str]:
        return {n: self._states_array(n) for n in self.system.states}

    def carries(self) -> dict[str, str]:
        """state -> the array of the adjoint of its value at the start of a step (y0's gradient)."""
        return {n: self.storage[("carry", n)].array for n in self.system.states}

    def cotangent_args(self) -> dict[str, str]:
        return {n: self.m.ident(n) for n in self.system.outputs}

    def accumulators(self) -> list[tuple[str, str, int]]:
        """(parameter or invariant, array, group) of each adjoint summed element-wise over the steps."""
        return [(key[1], s.array, key[2]) for key, s in self.storage.items() if key[0] == "acc"]

    def drives(self) -> list[tuple[str, str, str]]:
        """(state, array of its drive's adjoint rows, population) of each drive with a trainable inside."""
        return [(n, self.storage[("drive", n)].array, self.layout.population_of[n]) for n in self.reverse.drives
                if ("drive", n) in self.storage]

    def weight_products(self) -> list[tuple[str, str, str, str, int, bool]]:
        """(matrix, coupling, lam rows, source rows, the source's first row, observed) per product
        whose matrix is trained: scale * sum over steps of lam source^T, one matmul per chunk."""
        observed = {id(w) for w in self.observed.weights}
        return [(w.coupling.matrix, w.coupling.name, self.storage[("lam", w.product)].array,
                 self.storage[("v", w.source)].array, self.storage[("v", w.source)].offset, id(w) in observed)
                for w in self.weights]

    def block_name(self) -> str | None:
        """The block kernel (a model of one population group has one)."""
        return next((k.name for k in self.kernels if k.name == "mc_grad_block"), None)

    def block_matrices(self) -> dict[str, tuple[str, str]]:
        """coupling -> (its scaled matrix's key, its transpose's key) in the block kernel."""
        keys = next((set(k.keys) for k in self.kernels if k.name == "mc_grad_block"), set())
        return {c: (self._matrix_key(c, False), self._matrix_key(c, True)) for c in self.couplings
                if {self._matrix_key(c, False), self._matrix_key(c, True)} & keys}

    def matrices(self) -> dict[str, tuple[str, str | None]]:
        """coupling -> (matrix, its coefficient's key in _constants' scales, or None for 1)."""
        planned = {c.name for c in self.program.plan.couplings}
        return {name: (c.matrix, name if name in planned else None) for name, c in self.couplings.items()
                if any(op[0] == "matmul" and op[3] == name for ops in self.ops.values() for op in ops)}

    def chain_lines(self) -> list[str]:
        """At the end: each invariant's adjoint passed on to the trainable parameters it is made of."""
        lines = []
        printer = self._host_printer()
        for name, expr in self.reverse.invariants.items():
            for p in self._trainables_in(expr):
                factor = printer.doprint(sympy.diff(expr, _named(expr, p)))
                lines.append(f"for adjoint in adjoints.get({name!r}, ()):")
                lines.append(f"    gradients[{p!r}] = gradients[{p!r}] + _sum_to(({factor}) * adjoint, "
                             f"np.shape(params[{p!r}]))")
        return lines

    def drive_chain_lines(self) -> list[str]:
        """Per segment: sum over its steps of d(drive)/d(parameter) times the drive's adjoint rows."""
        lines = []
        printer = self._host_printer(windows=True)
        for state, array, population in self.drives():
            for p in self._trainables_in(self.reverse.drives[state]):
                drive = self.reverse.drives[state]
                factor = printer.doprint(sympy.diff(drive, _named(drive, p)))
                lines.append(f"gradients[{p!r}] = gradients[{p!r}] + _sum_to(({factor}) * "
                             f"_rows(env[{array!r}], stop - start, shapes[{population!r}]), np.shape(params[{p!r}]))")
        return lines

    def _host_printer(self, windows: bool = False) -> NumPyPrinter:
        """Array code on the device: parameters from `values`, invariants from `hoisted`, inputs
        from the chunk's `windows`, times `t_w`."""
        names = {n: f"values[{n!r}]" for n in self.system.params}
        names.update({n: f"hoisted[{self.m.ident(n)!r}]" for n in self.layout.hoisted})
        names[DT.name] = "dt"
        if windows:
            names.update({n: f"windows[{n!r}]" for n in self.system.inputs})
            names[TIME.name] = "t_w"
        return NumPyPrinter(names, module="cp")

    def _trainables_in(self, expr: sympy.Expr) -> list[str]:
        return sorted(x.name for x in expr.free_symbols if x.name in self.reverse.trainable)


def _named(expr: sympy.Expr, name: str) -> sympy.Symbol:
    """The symbol of expr called `name` (differentiated by: the very same symbol)."""
    return next(x for x in expr.free_symbols if x.name == name)


def _is_time(key: tuple) -> bool:
    return key[0] == "v" and isinstance(key[1], Value) and key[1].role == "time"


def _runs(ops) -> list:
    """The ops as fused runs of Elems (lists) and the matmuls and reductions between them."""
    parts: list = []
    for op in ops:
        if isinstance(op, (MatMul, Reduce)):
            parts.append(op)
        elif parts and isinstance(parts[-1], list):
            parts[-1].append(op)
        else:
            parts.append([op])
    return parts


__all__ = ["GradientKernels", "Elem", "MatMul"]
