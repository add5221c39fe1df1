"""The ops of grad()'s step for the CuPy backend: the step program and the reverse step as data.

What codegen/adjoint.py and codegen/step.py say one step computes, laid out as ops over *keys*
(what each op computes), and where each key lives (a register, or a device array when another
kernel, a later step or the host reads it). gradients.py prints the ops as kernels.

    Elem(group, key, expr)      one element per thread: key = expr (or key += expr)
    MatMul(out, source, W, T)   out = source @ (scale*W)^T (a coupling's product), or source @
                                (scale*W) ((scale*W)^T lambda: the adjoint of its source)
    Reduce(out, argument, ...)  one value per batch member: the sum (or mean) of the argument over
                                a group's units (mean()/sum() forward; an adjoint through one)

A key names what an op computes: ("v", Value) a forward value, ("lam", Value) its adjoint,
("T", product) the transposed product of the product's adjoint, ("acc", parameter, group) a
parameter's (or a loop invariant's) adjoint summed element-wise over the steps, ("drive", state)
this step's row of a drive's adjoint, ("carry", state) the adjoint the step after passes back,
("cot", output) this record row's cotangent, ("into", state) what a step's recorded computed
variables add to a new state's adjoint, ("red", kind, argument) a forward mean()/sum() (and
("arg", ...) its argument), ("spread", k)/("total", k) an adjoint on its way back through one.
Nothing is differentiated here.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from ...equations import TIME, PopMean, PopSum
from ...errors import UnsupportedFeatureError
from ..adjoint import Adjoint, DriveAdjoint, ParamAdjoint, ReverseObservation, ReverseStep, Term, WeightAdjoint
from ..layout import matrix_populations
from ..plan import DT, rational
from ..step import OBSERVE, Combine, Evaluate, Product, Rate, Value
from .steps import NO_WORK, refuse_statement


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


class GradientOps:
    """The ops of grad()'s step (recomputed forward, reverse, a record step's reverse) and where
    each key lives, for one CuPy module."""

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
        ops.append(Elem(group, key, self._reduced(expr, group, ops), accumulate))

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
        for run, part in enumerate(runs(ops)):
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
                            and not is_time(key):
                        found.add(key)
                written[op.key] = (run, op.group)
        return found


def is_time(key: tuple) -> bool:
    return key[0] == "v" and isinstance(key[1], Value) and key[1].role == "time"


def runs(ops) -> list:
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


__all__ = ["GradientOps", "Elem", "MatMul", "Reduce", "Storage", "is_time", "runs"]
