"""The element-wise programs the CuPy kernels compute: definitions, barriers, levels, groups.

Element-wise code is split at *barriers*: matrix couplings (cuBLAS matmul between kernels, on
the weights as given; the kernel reading the product applies c) and population reductions
mean()/sum() (a reduction kernel). The *level* of a value is the number of barriers on its
longest dependency path inside one stage; a kernel computes one level.

Populations that read each other's variables element-wise (a circuit's edges with number
weights) form a *group*: they must have the same size at run time and share kernels.
Populations connected only through matrices (or not at all) are separate groups and may have
different sizes.

One stage's program comes from the plan (algebraics, couplings, and each state's terms, which
the step program's Rates add up); every stage computes the same definitions, only the values
bound to the states and the time differ. The observation program computes the
recordable algebraic variables from the states at a record step.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterable

import sympy

from ...equations import TIME, PopMean, PopSum, symbol
from ...errors import UnsupportedFeatureError
from ...ir import MatVec, System
from ..layout import population_of
from ..plan import DT, Plan
from ..step import Rate


@dataclass
class Barrier:
    """A non-element-wise operation: result = W @ arg (per target unit) or mean/sum(arg) (per batch member)."""

    name: str
    kind: str                         # "matvec" | "mean" | "sum"
    arg: sympy.Expr                   # element-wise argument, stored (or put in shared memory) first
    matrix: str | None = None         # matvec: the IR matrix parameter
    scale: sympy.Expr = sympy.Integer(1)  # matvec: coefficient folded into the weights (host side)
    level: int = 0                    # the kernels of this level compute `arg`
    group: int = 0                    # group of the argument (source units)
    target: int | None = None         # matvec: group of the result (target units)


@dataclass
class RateTerms:
    """What one state's Rate adds up in a kernel: linear*x + products + rest + drive."""

    state: str
    linear: sympy.Expr
    products: list[str]               # barrier names (a product computed twice reads its twin's barrier)
    rest: sympy.Expr                  # 0 when none; barriers taken out
    drive: sympy.Expr                 # 0 when none; barriers taken out
    reads_state: bool                 # x itself is read: a linear term, or x_new = a*x + ... (dt folded in)

    def exprs(self) -> list[sympy.Expr]:
        own = [symbol(self.state)] if self.reads_state else []
        return [self.linear, self.rest, self.drive] + own + [symbol(p) for p in self.products]


@dataclass
class Program:
    """Element-wise definitions, barriers and what must come out: one stage, or the observation."""

    kind: str                                               # "stage" | "observe"
    defs: dict[str, sympy.Expr] = field(default_factory=dict)
    barriers: dict[str, Barrier] = field(default_factory=dict)
    rates: dict[str, RateTerms] = field(default_factory=dict)   # stage: state -> its rate's terms
    noise: dict[str, sympy.Expr] = field(default_factory=dict)  # stage: noisy state -> g of g*dW (barriers out)
    outputs: list[str] = field(default_factory=list)            # observe: recordable algebraics
    level: dict[str, int] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """Number of barrier layers: the final kernel of a stage runs after level depth - 1."""
        return max((b.level + 1 for b in self.barriers.values()), default=0)

    def closure(self, targets) -> tuple[list[str], set[str]]:
        """Definitions the targets need (dependencies first) and the other names they read."""
        order: list[str] = []
        base: set[str] = set()
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            if name in self.defs:
                for sym in sorted(self.defs[name].free_symbols, key=lambda x: x.name):
                    visit(sym.name)
                order.append(name)
            else:
                base.add(name)

        for e in targets:
            for sym in sorted(e.free_symbols, key=lambda x: x.name):
                visit(sym.name)
        return order, base

    def rate_reads(self, rates: Iterable[Rate]) -> list[sympy.Expr]:
        """Everything the given rates of the step program read."""
        return [e for r in rates for e in self.rates[r.state.name].exprs()]


class _UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def add(self, x) -> None:
        self.parent.setdefault(x, x)

    def find(self, x):
        self.add(x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


class Layout:
    """The stage and observation programs of a model, their levels and its population groups."""

    def __init__(self, system: System, plan: Plan):
        self.system = system
        self.population_of = population_of(system)
        self.algebraic_names = [n for n, _ in system.algebraics]
        self.hoisted = dict(plan.hoisted)
        self.vector_params = {n for n, p in system.params.items() if p.shape == "vector"}
        self.matrix_params = {n for n, p in system.params.items() if p.shape == "matrix"}
        self.vectors = set(self.vector_params) | {
            h for h, e in self.hoisted.items() if {s.name for s in e.free_symbols} & self.vector_params}
        self.stage = self._stage_program(plan)
        self.observe = self._observe_program()
        for program in (self.stage, self.observe):
            _levels(program)
        self._groups()

    # -- building the programs --------------------------------------------------------------

    def _stage_program(self, plan: Plan) -> Program:
        prog = Program("stage")
        # The plan may compute the same W @ x twice (once per expression using it): one matmul here.
        alias: dict[str, str] = {}
        for c in plan.couplings:
            twin = next((b.name for b in prog.barriers.values()
                         if (b.matrix, b.arg, b.scale) == (c.matrix, c.source, c.scale)), None)
            if twin is not None:
                alias[c.name] = twin
            else:
                prog.barriers[c.name] = Barrier(c.name, "matvec", c.source, c.matrix, c.scale)
        same = {symbol(a): symbol(b) for a, b in alias.items()}

        def fix(expr):
            return _extract(expr.xreplace(same) if same else expr, prog, "")

        for name, expr in plan.algebraics:
            prog.defs[name] = fix(expr)
        for s in plan.states:  # what each Rate of the step program adds up (the same in every stage)
            prog.rates[s.name] = RateTerms(s.name, s.linear, [alias.get(c, c) for c in s.couplings], fix(s.rest),
                                           fix(s.drive), s.linear != 0 or plan.fold_dt)
        prog.noise = {s.name: fix(s.diffusion) for s in plan.noise}
        return prog

    def _observe_program(self) -> Program:
        prog = Program("observe")
        for name, expr in self.system.algebraics:
            prog.defs[name] = _extract(expr, prog, "obs_")
        prog.outputs = list(self.algebraic_names)
        return prog

    # -- what a name is in a kernel --------------------------------------------------------

    def kind(self, name: str, prog: Program) -> str:
        s = self.system
        if name == TIME.name:
            return "time"
        if name == DT.name:
            return "dt"
        if name in s.states:
            return "state"
        if name in s.inputs:
            return "input"
        if name in s.emitted:
            return "emitted"
        if name in prog.defs:
            return "def"
        if name in prog.barriers:
            return "barrier"
        if name in self.vectors:
            return "vector"
        if name in s.params or name in self.hoisted:
            if name in self.matrix_params:
                raise UnsupportedFeatureError(f"the matrix '{name}' is used element-wise", None,
                                              "a weight matrix can only multiply a vector (W @ x)")
            return "scalar"
        raise UnsupportedFeatureError(f"no value for '{name}' in a CuPy kernel")

    # -- groups: populations coupled element-wise -------------------------------------------

    def _refs(self, expr: sympy.Expr, prog: Program) -> set:
        out = set()
        s = self.system
        for sym in expr.free_symbols:
            n = sym.name
            if n in s.states or n in s.inputs or n in s.emitted or n in self.vector_params or (n in self.population_of and n in
                                                                              self.algebraic_names):
                out.add(("pop", self.population_of[n]))
            elif n in self.vectors:          # a hoisted array: it belongs where its parameters do
                out |= self._refs(self.hoisted[n], prog)
            elif n in prog.defs:
                out.add((prog.kind, "def", n))
            elif n in prog.barriers and prog.barriers[n].kind == "matvec":
                out.add((prog.kind, "res", n))
        return out

    def _node(self, name: str, prog: Program):
        if name in self.population_of:
            return ("pop", self.population_of[name])
        return (prog.kind, "def", name)

    def _groups(self) -> None:
        uf = _UnionFind()
        labels = list(self.system.populations)
        for label in labels:
            uf.add(("pop", label))
        for prog in (self.stage, self.observe):
            for name, expr in prog.defs.items():
                node = self._node(name, prog)
                uf.add(node)
                for r in self._refs(expr, prog):
                    uf.union(node, r)
            for b in prog.barriers.values():
                node = (prog.kind, "arg", b.name)
                uf.add(node)
                for r in self._refs(b.arg, prog):
                    uf.union(node, r)
        for name, terms in self.stage.rates.items():
            node = ("pop", self.population_of[name])
            for e in terms.exprs() + [self.stage.noise.get(name, sympy.Integer(0))]:
                for r in self._refs(e, self.stage):
                    uf.union(node, r)
        roots: list = []
        for label in labels:
            root = uf.find(("pop", label))
            if root not in roots:
                roots.append(root)
        self.groups = [[label for label in labels if uf.find(("pop", label)) == root] for root in roots]
        group_of_root = {root: g for g, root in enumerate(roots)}

        def group(node, what: str) -> int:
            root = uf.find(node)
            if root not in group_of_root:
                raise UnsupportedFeatureError(
                    f"the CuPy backend cannot tell which population {what} belongs to (it depends on no "
                    "state, input or per-unit parameter)", None,
                    "reductions and couplings must act on a population's variables")
            return group_of_root[root]

        self.label_group = {label: g for g, members in enumerate(self.groups) for label in members}
        self.def_group: dict[tuple[str, str], int] = {}
        for prog in (self.stage, self.observe):
            for name in prog.defs:
                self.def_group[(prog.kind, name)] = group(self._node(name, prog), f"'{name}'")
            for b in prog.barriers.values():
                b.group = group((prog.kind, "arg", b.name), f"the argument of {b.kind} '{b.name}'")
                if b.kind == "matvec":
                    b.target = group((prog.kind, "res", b.name), f"the result of coupling '{b.name}'")

    # -- what one stage computes for one group ----------------------------------------------

    def group_of(self, name: str) -> int:
        return self.label_group[self.population_of[name]]

    def states_of(self, g: int) -> list[str]:
        return [n for n in self.system.states if self.group_of(n) == g]

    def args_of(self, prog: Program, g: int, level: int) -> list[Barrier]:
        return [b for b in prog.barriers.values() if b.group == g and b.level == level]

    def outputs_of(self, g: int, level: int) -> list[str]:
        return [n for n in self.observe.outputs
                if self.def_group[("observe", n)] == g and self.observe.level[n] == level]

    @property
    def has_barriers(self) -> bool:
        return bool(self.stage.barriers)

    @functools.cached_property
    def slots(self) -> dict[str, int]:
        """Each barrier's slot in the persistent kernel's shared memory (the barriers are fixed)."""
        names = list(self.stage.barriers) + list(self.observe.barriers)
        return {name: k for k, name in enumerate(names)}


def _extract(expr: sympy.Expr, prog: Program, prefix: str) -> sympy.Expr:
    """Replace every mean()/sum()/W @ x left in expr by a barrier's result symbol."""
    if not expr.has(PopMean, PopSum, MatVec):
        return expr

    def walk(e):
        if isinstance(e, (PopMean, PopSum)):
            kind = "mean" if isinstance(e, PopMean) else "sum"
            return symbol(_barrier(prog, prefix, kind, walk(e.args[0])))
        if isinstance(e, MatVec):
            weights, source = e.args
            return symbol(_barrier(prog, prefix, "matvec", walk(source), weights.name))
        if not e.args:
            return e
        args = [walk(a) for a in e.args]
        return e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e

    return walk(expr)


def _barrier(prog: Program, prefix: str, kind: str, arg: sympy.Expr, matrix: str | None = None) -> str:
    for b in prog.barriers.values():
        if (b.kind, b.arg, b.matrix) == (kind, arg, matrix) and b.scale == 1:
            return b.name
    name = f"{prefix}{kind}_{len(prog.barriers)}"
    prog.barriers[name] = Barrier(name, kind, arg, matrix)
    return name


def _levels(prog: Program) -> None:
    """The level of every definition and barrier argument (barriers on the longest path to it)."""
    memo = prog.level

    def level(name: str) -> int:
        if name not in memo:
            if name in prog.defs:
                memo[name] = expr_level(prog.defs[name])
            elif name in prog.barriers:
                memo[name] = expr_level(prog.barriers[name].arg) + 1
            else:
                memo[name] = 0
        return memo[name]

    def expr_level(e) -> int:
        return max((level(s.name) for s in e.free_symbols), default=0)

    for b in prog.barriers.values():
        b.level = expr_level(b.arg)
    for name in prog.defs:
        level(name)
