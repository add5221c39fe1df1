"""CuPy backend: a Plan -> a generated module whose work runs in fused CUDA kernels.

The Plan (plan.py) already says what is constant (hoisted), what is a matrix coupling (and its
folded coefficient c in c * W @ x) and how each state is updated. This module only decides how
that work is laid out on a GPU:

* Element-wise code is split at *barriers*: matrix couplings (cuBLAS matmul between kernels,
  on the weights as given; the kernel reading the product applies c) and population
  reductions mean()/sum() (a reduction kernel). The *level* of a value is the
  number of barriers on its longest dependency path inside one stage; a kernel computes one
  level. The last kernel of a stage computes the derivatives, the next stage values (or the
  step's update) *and* the level-0 barrier arguments of the next stage: so one stage of a
  model with one layer of couplings is one matmul plus ONE fused kernel.
* Populations that read each other's variables element-wise (a circuit's edges with number
  weights) form a *group*: they must have the same size at run time and share kernels.
  Populations connected only through matrices (or not at all) are separate groups and may
  have different sizes.
* Strategies (chosen by the generated module from the sizes at run time, see its
  `strategy_for`): "fused" (no barriers: one kernel runs every stage of every step of a chunk
  in registers), "persistent" (one group of <= 1024 units with small weights: one thread
  block per batch member runs many steps per launch, couplings as shared-memory mat-vecs and
  block reductions), "graph" (per-stage kernels + cuBLAS, a chunk of steps captured once in a
  CUDA graph and replayed) and "stream" (the same launches issued one by one).

Kernel bodies are printed by c_printer.CPrinter; they are plain C as well as CUDA C (the
preamble's MODELC_* macros are the only CUDA-specific part), so tests can compile them with
the host C compiler.
"""
from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass, field

import sympy

from ..equations import TIME, PopMean, PopSum, Exprel, symbol
from ..errors import UnsupportedFeatureError
from ..ir import MatVec, System
from .c_printer import C_RESERVED, CPrinter, c_helpers
from .layout import common_context
from .naming import Namer
from .plan import DT, Plan, make_plan
from .printers import NumPyPrinter
from .schemes import get_scheme
from .templating import environment

# Names the generated Python module uses itself (model variables never take them).
_PY_RESERVED = {"cp", "np", "env", "computed", "value", "params", "inputs", "dt", "t", "y", "DTYPE",
                "result", "shapes", "record", "steps"}


class CNamer(Namer):
    """Readable identifiers that are valid (and free) in Python, C, C++ and CUDA at once.

    Generated names all start with `mc_`; a model variable never does."""

    @staticmethod
    def legal(base: str) -> str:
        base = Namer.legal(base)
        return "v_" + base if base.startswith("mc_") else base

    def free(self, candidate: str) -> bool:
        return super().free(candidate) and candidate not in C_RESERVED


# --- the element-wise programs between barriers -------------------------------------------

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
class StateUpdate:
    """The plan's update of one state: linear*x + couplings + rest + drive (dt folded in for Euler)."""

    name: str
    linear: sympy.Expr
    accs: list[str]
    rest: sympy.Expr
    drive: sympy.Expr

    def exprs(self, fold_dt: bool = False) -> list[sympy.Expr]:
        """What the update reads (the state itself only when a term uses it)."""
        own = [symbol(self.name)] if fold_dt or self.linear != 0 else []
        return [self.linear, self.rest, self.drive] + own + [symbol(a) for a in self.accs]


@dataclass
class Program:
    """Element-wise definitions, barriers and what must come out: one stage, or the observation."""

    kind: str                                           # "stage" | "observe"
    defs: dict[str, sympy.Expr] = field(default_factory=dict)
    barriers: dict[str, Barrier] = field(default_factory=dict)
    states: list[StateUpdate] = field(default_factory=list)   # stage
    outputs: list[str] = field(default_factory=list)          # observe: recordable algebraics
    level: dict[str, int] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """Number of barrier layers: the final kernel of a stage runs after level depth - 1."""
        return max((b.level + 1 for b in self.barriers.values()), default=0)


@dataclass
class Kernel:
    """One generated kernel: its C parameters (name -> run-time value key) and its body."""

    name: str
    kind: str            # "elem" (one element per thread, one launch per stage/level), "flat" (fused loop),
                         # "block" (persistent: a block per batch member), "reduce"
    group: int
    doc: str
    params: list[tuple[str, str]] = field(default_factory=list)   # (C type, key); C name = key before "@"
    top: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)

    def arg(self, ctype: str, key: str) -> str:
        for k, (old, existing) in enumerate(self.params):
            if existing == key:
                if old.startswith("const ") and not ctype.startswith("const "):
                    self.params[k] = (ctype, key)   # read and written: not const
                return key.split("@")[0]
        self.params.append((ctype, key))
        return key.split("@")[0]

    def array(self, key: str, write: bool = False) -> str:
        return self.arg("REAL* __restrict__" if write else "const REAL* __restrict__", key)

    def load(self, line: str) -> None:
        if line not in self.top:
            self.top.append(line)

    @property
    def keys(self) -> list[str]:
        return [key for _, key in self.params]

    def signature(self) -> str:
        params = ",\n    ".join(f"{ctype} {key.split('@')[0]}" for ctype, key in self.params)
        return f"MODELC_KERNEL void {self.name}(\n    {params})"


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


def _real_literal(value: float) -> str:
    """A double literal for host-precision arithmetic in kernels (time)."""
    text = repr(float(value))
    return text if ("." in text or "e" in text) else text + ".0"


class CuPyModule:
    """Everything the CuPy templates need, computed from a Plan."""

    def __init__(self, system: System, plan: Plan, dtype: str = "float64"):
        if dtype not in ("float64", "float32"):
            raise UnsupportedFeatureError(f"unsupported dtype '{dtype}'", None, "choose float64 or float32")
        self.system, self.plan, self.dtype = system, plan, dtype
        self.scheme = plan.scheme
        self.stages = plan.scheme.stages
        self.population_of = {name: label for label, names in system.populations.items() for name in names}
        self.algebraic_names = [n for n, _ in system.algebraics]
        self.hoisted = dict(plan.hoisted)
        self.vector_params = {n for n, p in system.params.items() if p.shape == "vector"}
        self.matrix_params = {n for n, p in system.params.items() if p.shape == "matrix"}
        self.vectors = set(self.vector_params) | {
            h for h, e in self.hoisted.items() if {s.name for s in e.free_symbols} & self.vector_params}
        self.stage = Program("stage")
        self.observe = Program("observe")
        self._build_stage()
        self._build_observe()
        for program in (self.stage, self.observe):
            self._levels(program)
        self._groups()
        extra = list(self.hoisted) + [n for n in self.stage.defs if n not in system.outputs] + \
            list(self.stage.barriers) + list(self.observe.barriers)
        self.namer = CNamer(list(system.states) + list(system.params) + list(system.inputs) +
                            self.algebraic_names + extra, taken=_PY_RESERVED)
        self.names = dict(self.namer.names)
        self.names[TIME.name] = "t"
        self.names[DT.name] = "mc_dt"
        self.printer = CPrinter(self.names, dtype)
        self.k_needed = self._k_needed()
        self._kernels: list[Kernel] | None = None

    # -- building the programs --------------------------------------------------------------

    def _build_stage(self) -> None:
        prog, plan = self.stage, self.plan
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
            return self._extract(expr.xreplace(same) if same else expr, prog, "")

        for name, expr in plan.algebraics:
            prog.defs[name] = fix(expr)
        for s in plan.states:
            prog.states.append(StateUpdate(s.name, s.linear, [alias.get(a, a) for a in s.couplings],
                                           fix(s.rest), fix(s.drive)))

    def _build_observe(self) -> None:
        prog = self.observe
        for name, expr in self.system.algebraics:
            prog.defs[name] = self._extract(expr, prog, "obs_")
        prog.outputs = list(self.algebraic_names)

    def _extract(self, expr: sympy.Expr, prog: Program, prefix: str) -> sympy.Expr:
        """Replace every mean()/sum()/W @ x left in expr by a barrier's result symbol."""
        if not expr.has(PopMean, PopSum, MatVec):
            return expr

        def walk(e):
            if isinstance(e, (PopMean, PopSum)):
                kind = "mean" if isinstance(e, PopMean) else "sum"
                return symbol(self._barrier(prog, prefix, kind, walk(e.args[0])))
            if isinstance(e, MatVec):
                weights, source = e.args
                return symbol(self._barrier(prog, prefix, "matvec", walk(source), weights.name))
            if not e.args:
                return e
            args = [walk(a) for a in e.args]
            return e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e

        return walk(expr)

    @staticmethod
    def _barrier(prog: Program, prefix: str, kind: str, arg: sympy.Expr, matrix: str | None = None) -> str:
        for b in prog.barriers.values():
            if (b.kind, b.arg, b.matrix) == (kind, arg, matrix) and b.scale == 1:
                return b.name
        name = f"{prefix}{kind}_{len(prog.barriers)}"
        prog.barriers[name] = Barrier(name, kind, arg, matrix)
        return name

    def _levels(self, prog: Program) -> None:
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
        for u in prog.states:
            memo[u.name + "'"] = max(expr_level(e) for e in u.exprs(self.plan.fold_dt))

    # -- groups: populations coupled element-wise -------------------------------------------

    def _refs(self, expr: sympy.Expr, prog: Program) -> set:
        out = set()
        s = self.system
        for sym in expr.free_symbols:
            n = sym.name
            if n in s.states or n in s.inputs or n in self.vector_params or (n in self.population_of and n in
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
        for u in self.stage.states:
            node = ("pop", self.population_of[u.name])
            for e in u.exprs(self.plan.fold_dt):
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

    def group_of(self, name: str) -> int:
        return self.label_group[self.population_of[name]]

    # -- naming and printing ----------------------------------------------------------------

    def ident(self, name: str) -> str:
        return self.names[name]

    def c(self, expr: sympy.Expr) -> str:
        return self.printer.doprint(expr)

    def lit(self, value) -> str:
        return self.printer.literal(float(value))

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

    def _k_needed(self) -> set[int]:
        """Stages whose derivative must be kept (in memory) for a later stage or the update."""
        sch = self.scheme
        if self.plan.fold_dt:
            return set()
        keep = set()
        for s in range(self.stages - 1):
            if sch.b[s] != 0 or any(len(sch.a[r]) > s and sch.a[r][s] != 0 for r in range(s + 1, self.stages)):
                keep.add(s)
        return keep

    # -- emitting element-wise code ---------------------------------------------------------

    def _closure(self, prog: Program, targets) -> tuple[list[str], set[str]]:
        """Definitions the targets need (dependencies first) and the other names they read."""
        order: list[str] = []
        base: set[str] = set()
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            if name in prog.defs:
                for sym in sorted(prog.defs[name].free_symbols, key=lambda x: x.name):
                    visit(sym.name)
                order.append(name)
            else:
                base.add(name)

        for e in targets:
            for sym in sorted(e.free_symbols, key=lambda x: x.name):
                visit(sym.name)
        return order, base

    def _kernel_value(self, k: Kernel, name: str, kind: str) -> None:
        """Scalars are kernel arguments, arrays of constants are loaded once at the kernel's top."""
        if kind == "dt":
            k.arg("REAL", "mc_dt")
        elif kind == "scalar":
            k.arg("REAL", self.ident(name))
        elif kind == "vector":
            ident = self.ident(name)
            k.array(f"mc_p_{ident}")
            k.load(f"const REAL {ident} = mc_p_{ident}[mc_i];")

    def _input(self, k: Kernel, name: str, row: str) -> str:
        ident = self.ident(name)
        k.array(f"mc_in_{ident}")
        for stride in ("rs", "bs", "js"):
            k.arg("long long", f"mc_{stride}_{ident}")
        return f"mc_in_{ident}[({row}) * mc_rs_{ident} + mc_b * mc_bs_{ident} + mc_j * mc_js_{ident}]"

    def _emit(self, k: Kernel, prog: Program, targets, scope: dict) -> list[str]:
        """Bind what the targets read (as `scope` says) and compute the definitions they need.

        scope: "state" -> fn(name) -> C text | None (bound outside), "input" -> row text | None,
        "time" -> C text | None, "barrier" -> fn(name) -> C text | None."""
        order, base = self._closure(prog, targets)
        bind_order = {"time": 0, "input": 1, "state": 2, "barrier": 3}
        lines = []
        for name in sorted(base, key=lambda n: (bind_order.get(self.kind(n, prog), 9), n)):
            kind = self.kind(name, prog)
            if kind in ("dt", "scalar", "vector"):
                self._kernel_value(k, name, kind)
                continue
            if kind == "time":
                text = scope.get("time")
            elif kind == "input":
                text = None if scope.get("input") is None else self._input(k, name, scope["input"])
            elif kind == "state":
                text = scope["state"](name) if scope.get("state") else None
            elif kind == "barrier":
                text = scope["barrier"](name) if scope.get("barrier") else None
            else:  # pragma: no cover - every name has a kind
                raise UnsupportedFeatureError(f"internal error: cannot bind '{name}' ({kind})")
            if text is not None:
                lines.append(f"const REAL {self.ident(name)} = {text};")
        for name in order:
            lines.append(f"const REAL {self.ident(name)} = {self.c(prog.defs[name])};")
        return lines

    def _needs_time(self, prog: Program, targets) -> bool:
        order, base = self._closure(prog, targets)
        return TIME.name in base

    def _needs_inputs(self, prog: Program, targets) -> bool:
        _, base = self._closure(prog, targets)
        return any(n in self.system.inputs for n in base)

    # -- what one stage computes for one group ----------------------------------------------

    def states_of(self, g: int) -> list[StateUpdate]:
        return [u for u in self.stage.states if self.group_of(u.name) == g]

    def args_of(self, prog: Program, g: int, level: int) -> list[Barrier]:
        return [b for b in prog.barriers.values() if b.group == g and b.level == level]

    def outputs_of(self, g: int, level: int) -> list[str]:
        return [n for n in self.observe.outputs
                if self.def_group[("observe", n)] == g and self.observe.level[n] == level]

    def _update_lines(self, u: StateUpdate, x: str, out: str) -> list[str]:
        """The stage's derivative (RK) or new value (Euler, dt folded), in the NumPy backend's order."""
        c = self.c
        if self.plan.fold_dt:
            first = x if u.linear == 1 else f"{x} * {c(u.linear)}"
            lines = [f"REAL {out} = {first};"]
            lines += [f"{out} += {self.ident(acc)};" for acc in u.accs]
            if u.rest != 0:
                lines.append(f"{out} += {c(u.rest)};")
            if u.drive != 0:
                lines.append(f"{out} += ({c(u.drive)});")
            return lines
        terms = []
        if u.linear != 0:
            terms.append(f"{c(u.linear)} * {x}")
        terms += [self.ident(acc) for acc in u.accs]
        if u.rest != 0:
            terms.append(c(u.rest))
        if u.drive != 0:
            terms.append(f"({c(u.drive)})")
        return [f"const REAL {out} = {' + '.join(terms) if terms else self.lit(0)};"]

    def _stage_time(self, s: int) -> str:
        c = self.scheme.c[s]
        return "(REAL)mc_tstep" if c == 0 else f"(REAL)(mc_tstep + {_real_literal(c)} * mc_dt64)"

    def _combination(self, base: str, coeffs, k_text) -> str:
        """base + a_0*dt*k_0 + ... in the NumPy backend's order (left to right)."""
        terms = [f"{self.lit(a)} * mc_dt * {k_text(j)}" for j, a in enumerate(coeffs) if a != 0]
        return " + ".join([base] + terms)

    # -- kernels: element-wise (graph / stream strategies) -----------------------------------

    def _elem_kernel(self, name: str, g: int, doc: str) -> Kernel:
        k = Kernel(name, "elem", g, doc)
        k.arg("long long", f"mc_E@{g}")
        k.arg("long long", f"mc_n@{g}")
        return k

    def _finish_elem(self, k: Kernel) -> Kernel:
        text = "\n".join(k.top + k.body)
        pre = ["const long long mc_i = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
               "if (mc_i >= mc_E) return;"]
        pre += self._unit_index(text)
        if re.search(r"\bmc_(step|tstep)\b", text):
            k.arg("const long long* __restrict__", "mc_base")
            pre.append("const long long mc_step = mc_base[0] + mc_local;")
        if re.search(r"\bmc_dt\b", text):
            k.arg("REAL", "mc_dt")
        if re.search(r"\bmc_(tstep|t0|dt64)\b", text):
            k.arg("double", "mc_t0")
            k.arg("double", "mc_dt64")
        if re.search(r"\bmc_tstep\b", text):
            pre.append("const double mc_tstep = mc_t0 + (double)mc_step * mc_dt64;")
        k.top = pre + k.top
        k.arg("long long", "mc_local")   # always last: the step inside the chunk, given per launch
        return k

    @staticmethod
    def _unit_index(text: str) -> list[str]:
        """Batch member mc_b and unit mc_j of element mc_i, when the kernel's text uses them."""
        lines = []
        if re.search(r"\bmc_(b|j)\b", text):
            lines.append("const long long mc_b = mc_i / mc_n;")
        if re.search(r"\bmc_j\b", text):
            lines.append("const long long mc_j = mc_i - mc_b * mc_n;")
        return lines

    def _state_scope(self, k: Kernel, source: str):
        def state(name: str) -> str:
            return f"{k.array(f'mc_{source}_{self.ident(name)}')}[mc_i]"
        return state

    def _result_scope(self, k: Kernel, prog: Program):
        def barrier(name: str) -> str:
            b = prog.barriers[name]
            key = f"mc_res_{self.ident(name)}"
            k.array(key)
            if b.kind != "matvec":
                return f"{key}[mc_b]"
            if b.scale == 1:
                return f"{key}[mc_i]"
            # the coupling's coefficient is applied to the product (the weights stay as given)
            return f"{k.arg('REAL', f'mc_scale_{self.ident(name)}')} * {key}[mc_i]"
        return barrier

    def _arg_lines(self, k: Kernel, prog: Program, barriers: list[Barrier], scope: dict,
                   store: str = "global") -> list[str]:
        """Compute barrier arguments in a nested scope and store them (global array or shared memory)."""
        if not barriers:
            return []
        lines = self._emit(k, prog, [b.arg for b in barriers], scope)
        for b in barriers:
            ident = self.ident(b.name)
            if store == "global":
                k.array(f"mc_arg_{ident}", write=True)
                lines.append(f"mc_arg_{ident}[mc_i] = {self.c(b.arg)};")
            else:
                slot = self.slots[b.name]
                lines.append(f"mc_smem[{slot} * mc_T + mc_tid] = mc_active ? ({self.c(b.arg)}) : {self.lit(0)};")
        return ["{"] + ["    " + line for line in lines] + ["}"]

    def _record_lines(self, k: Kernel, name: str, value: str, guard: str = "") -> list[str]:
        """Write value into row mc_row of the record of output `name`, when that output is recorded."""
        ident = self.ident(name)
        k.array(f"mc_rec_{ident}", write=True)
        k.arg("const int* __restrict__", "mc_recflags")
        index = self.system.outputs.index(name)
        return [f"if ({guard}mc_recflags[{index}]) mc_rec_{ident}[mc_row * mc_E + mc_i] = {value};"]

    def _stage_kernels(self, s: int, g: int) -> list[Kernel]:
        """The kernels of stage s for group g: argument kernels of levels 1.., then the final one."""
        prog, S = self.stage, self.stages
        kernels = []
        src = "y" if s == 0 else "ys"
        for level in range(1, prog.depth):
            barriers = self.args_of(prog, g, level)
            if not barriers:
                continue
            k = self._elem_kernel(f"mc_stage{s + 1}_l{level}_g{g}", g,
                                  f"stage {s + 1} of {S}, group {g}: arguments of the level-{level} couplings")
            scope = {"state": self._state_scope(k, src), "input": "mc_local", "time": self._stage_time(s),
                     "barrier": self._result_scope(k, prog)}
            k.body = self._arg_lines(k, prog, barriers, scope)
            kernels.append(self._finish_elem(k))
        states = self.states_of(g)
        next_args = self.args_of(prog, g, 0)
        if not states and not next_args:
            return kernels
        last = s == S - 1
        what = "the update of the step" if last else f"the values of stage {s + 2}"
        k = self._elem_kernel(f"mc_stage{s + 1}_g{g}", g,
                              f"stage {s + 1} of {S}, group {g}: derivatives, {what}, next coupling arguments")
        targets = [e for u in states for e in u.exprs(self.plan.fold_dt)]
        scope = {"state": self._state_scope(k, src), "input": "mc_local", "time": self._stage_time(s),
                 "barrier": self._result_scope(k, prog)}
        body = self._emit(k, prog, targets, scope)
        sch = self.scheme
        for u in states:
            ident = self.ident(u.name)
            body += self._update_lines(u, ident, f"mc_d_{ident}")
        for u in states:
            ident = self.ident(u.name)
            y = k.array(f"mc_y_{ident}", write=last)
            if not last:
                if s in self.k_needed:
                    body.append(f"{k.array(f'mc_k{s}_{ident}', write=True)}[mc_i] = mc_d_{ident};")
                coeffs = sch.a[s + 1]
                k_text = self._k_text(k, ident, s)
                body.append(f"const REAL mc_n_{ident} = {self._combination(f'{y}[mc_i]', coeffs, k_text)};")
                body.append(f"{k.array(f'mc_ys_{ident}', write=True)}[mc_i] = mc_n_{ident};")
            elif self.plan.fold_dt:
                body.append(f"const REAL mc_n_{ident} = mc_d_{ident};")
                body.append(f"{y}[mc_i] = mc_n_{ident};")
            else:
                body.append(f"REAL mc_n_{ident} = {y}[mc_i];")
                k_text = self._k_text(k, ident, s)
                for j, b in enumerate(sch.b):
                    if b != 0:
                        body.append(f"mc_n_{ident} += {self.lit(b)} * mc_dt * {k_text(j)};")
                body.append(f"{y}[mc_i] = mc_n_{ident};")
        if last and states:
            k.arg("long long", "mc_sampling")
            body.append("if ((mc_step + 1) % mc_sampling == 0) {")
            body.append("    const long long mc_row = (mc_step + 1) / mc_sampling - 1;")
            for u in states:
                body += ["    " + line for line in self._record_lines(k, u.name, f"mc_n_{self.ident(u.name)}")]
            body.append("}")
        if next_args:
            if last:
                time = "(REAL)(mc_t0 + (double)(mc_step + 1) * mc_dt64)"
                row = "mc_local + 1"
            else:
                time, row = self._stage_time(s + 1), "mc_local"
            scope = {"state": lambda name: f"mc_n_{self.ident(name)}", "input": row, "time": time}
            body.append(f"/* arguments of the couplings of {'the next step' if last else f'stage {s + 2}'} */")
            body += self._arg_lines(k, prog, next_args, scope)
        k.body = body
        kernels.append(self._finish_elem(k))
        return kernels

    def _k_text(self, k: Kernel, ident: str, s: int):
        def text(j: int) -> str:
            if j == s:
                return f"mc_d_{ident}"
            return f"{k.array(f'mc_k{j}_{ident}')}[mc_i]"
        return text

    def _prologue_kernel(self, g: int) -> Kernel | None:
        args = self.args_of(self.stage, g, 0)
        if not args:
            return None
        k = self._elem_kernel(f"mc_prologue_g{g}", g, f"group {g}: coupling arguments of the first step's stage 1")
        scope = {"state": self._state_scope(k, "y"), "input": "mc_local", "time": self._stage_time(0)}
        k.body = self._arg_lines(k, self.stage, args, scope)
        return self._finish_elem(k)

    def _observe_kernels(self, g: int) -> list[Kernel]:
        """At a record step: the recorded algebraics (and the couplings they need) from the new states."""
        prog = self.observe
        kernels = []
        for level in range(prog.depth + 1):
            outputs = self.outputs_of(g, level)
            barriers = self.args_of(prog, g, level)
            if not outputs and not barriers:
                continue
            k = self._elem_kernel(f"mc_observe_l{level}_g{g}", g,
                                  f"group {g}: recorded algebraic variables of level {level}")
            targets = [symbol(n) for n in outputs]
            scope = {"state": self._state_scope(k, "y"), "input": "mc_local",
                     "time": "(REAL)(mc_t0 + (double)(mc_step + 1) * mc_dt64)",
                     "barrier": self._result_scope(k, prog)}
            body = self._emit(k, prog, targets + [b.arg for b in barriers], scope)
            if outputs:
                k.arg("long long", "mc_sampling")
                k.arg("const int* __restrict__", "mc_recflags")
                body.append("const long long mc_row = (mc_step + 1) / mc_sampling - 1;")
                for n in outputs:
                    body += self._record_lines(k, n, self.ident(n))
            for b in barriers:
                ident = self.ident(b.name)
                k.array(f"mc_arg_{ident}", write=True)
                body.append(f"mc_arg_{ident}[mc_i] = {self.c(b.arg)};")
            k.body = body
            kernels.append(self._finish_elem(k))
        return kernels

    # -- kernels: loops over the steps of a chunk (fused and persistent strategies) ----------

    def _loop_kernel(self, g: int, block: bool) -> Kernel:
        """One launch per chunk: every stage of every step in registers.

        flat  (no barriers): one thread per element, any number of elements.
        block (persistent): one block per batch member, a thread per unit (n <= blockDim),
              barrier arguments in shared memory, couplings as block mat-vecs/reductions."""
        name = f"mc_{'persistent' if block else 'fused'}_g{g}"
        k = Kernel(name, "block" if block else "flat", g,
                   ("persistent: a block per batch member runs the steps of a chunk" if block else
                    "fused: each thread runs every stage of every step of a chunk for one element")
                   + f" (group {g})")
        k.arg("long long", f"mc_E@{g}")
        k.arg("long long", f"mc_n@{g}")
        k.arg("double", "mc_t0")
        k.arg("double", "mc_dt64")
        k.arg("long long", "mc_sampling")
        prog, sch, S = self.stage, self.scheme, self.stages
        states = self.states_of(g)
        guard = "mc_active && " if block else ""
        body = []
        for u in states:
            ident = self.ident(u.name)
            body.append(f"REAL mc_s_{ident} = {k.array(f'mc_y_{ident}', write=True)}[mc_i];")
        body.append("for (long long mc_local = 0; mc_local < mc_L; ++mc_local) {")
        loop = ["const long long mc_step = mc_base + mc_local;",
                "const double mc_tstep = mc_t0 + (double)mc_step * mc_dt64;"]  # (dropped below when unused)
        if states:
            loop.append("REAL " + ", ".join(f"mc_k{s}_{self.ident(u.name)}" for s in range(S) for u in states) + ";")
        for s in range(S):
            stage = [f"/* stage {s + 1} of {S} */"]
            targets = [e for u in states for e in u.exprs(self.plan.fold_dt)] + \
                [b.arg for b in prog.barriers.values()]
            outer = {"time": self._stage_time(s), "input": "mc_local",
                     "state": self._loop_stage_state(s)}
            order, base = self._closure(prog, targets)
            for name in sorted(base, key=lambda n: ({"time": 0, "input": 1, "state": 2}.get(self.kind(n, prog), 9), n)):
                kind = self.kind(name, prog)
                if kind == "state" and self.group_of(name) != g:
                    continue
                if kind in ("time", "input", "state"):
                    stage += self._emit(k, prog, [symbol(name)], outer)
            inner = {"state": None, "input": None, "time": None, "barrier": None}
            for level in range(prog.depth):
                args = [b for b in prog.barriers.values() if b.level == level]
                stage += self._arg_lines(k, prog, args, inner, store="shared")
                stage.append("MODELC_SYNC();")
                stage += self._block_results(k, args)
                stage.append("MODELC_SYNC();")
            final = self._emit(k, prog, [e for u in states for e in u.exprs(self.plan.fold_dt)], inner)
            for u in states:
                ident = self.ident(u.name)
                final += self._update_lines(u, ident, f"mc_d_{ident}")
                final.append(f"mc_k{s}_{ident} = mc_d_{ident};")
            stage += ["{"] + ["    " + line for line in final] + ["}"]
            loop += ["{"] + ["    " + line for line in stage] + ["}"]
        for u in states:
            ident = self.ident(u.name)
            if self.plan.fold_dt:
                loop.append(f"mc_s_{ident} = mc_k0_{ident};")
            else:
                for j, b in enumerate(sch.b):
                    if b != 0:
                        loop.append(f"mc_s_{ident} += {self.lit(b)} * mc_dt * mc_k{j}_{ident};")
        record = ["const long long mc_row = (mc_step + 1) / mc_sampling - 1;"]
        for u in states:
            record += self._record_lines(k, u.name, f"mc_s_{self.ident(u.name)}", guard)
        record += self._loop_observe(k, g, block)
        loop.append("if ((mc_step + 1) % mc_sampling == 0) {")
        loop += ["    " + line for line in record]
        loop.append("}")
        if not re.search(r"\bmc_tstep\b", "\n".join(loop[2:])):
            del loop[1]
        body += ["    " + line for line in loop]
        body.append("}")
        for u in states:
            ident = self.ident(u.name)
            body.append(f"if (mc_active) mc_y_{ident}[mc_i] = mc_s_{ident};" if block else
                        f"mc_y_{ident}[mc_i] = mc_s_{ident};")
        k.body = body
        if block:
            pre = ["const long long mc_T = blockDim.x;",
                   "const long long mc_tid = threadIdx.x;",
                   "const long long mc_b = blockIdx.x;",
                   "const int mc_active = mc_tid < mc_n;",
                   "const long long mc_j = mc_active ? mc_tid : mc_n - 1;",
                   "const long long mc_i = mc_b * mc_n + mc_j;"]
            if "mc_smem" in "\n".join(body):
                pre.insert(0, "MODELC_SMEM;")
        else:
            pre = ["const long long mc_i = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
                   "if (mc_i >= mc_E) return;"]
            pre += self._unit_index("\n".join(k.top + body))
        k.top = pre + k.top
        if re.search(r"\bmc_dt\b", "\n".join(k.top + body)):
            k.arg("REAL", "mc_dt")
        k.arg("long long", "mc_base")
        k.arg("long long", "mc_L")
        return k

    def _loop_stage_state(self, s: int):
        sch = self.scheme

        def state(name: str) -> str:
            ident = self.ident(name)
            if s == 0:
                return f"mc_s_{ident}"
            return self._combination(f"mc_s_{ident}", sch.a[s], lambda j: f"mc_k{j}_{ident}")
        return state

    def _block_results(self, k: Kernel, barriers: list[Barrier]) -> list[str]:
        """Barrier results inside a block: mat-vec over shared memory, tree reductions."""
        lines = []
        for b in barriers:
            ident, slot = self.ident(b.name), self.slots[b.name]
            if b.kind == "matvec":
                w = k.array(f"mc_w_{ident}")
                lines += [f"REAL mc_sum_{ident} = {self.lit(0)};",
                          f"for (long long mc_q = 0; mc_q < mc_n; ++mc_q) "
                          f"mc_sum_{ident} += {w}[mc_q * mc_n + mc_j] * mc_smem[{slot} * mc_T + mc_q];",
                          f"const REAL {ident} = mc_sum_{ident};"]
        for b in barriers:
            ident, slot = self.ident(b.name), self.slots[b.name]
            if b.kind in ("mean", "sum"):
                lines += [f"for (long long mc_h = mc_T / 2; mc_h > 0; mc_h /= 2) {{",
                          f"    if (mc_tid < mc_h) mc_smem[{slot} * mc_T + mc_tid] += "
                          f"mc_smem[{slot} * mc_T + mc_tid + mc_h];",
                          "    MODELC_SYNC();",
                          "}",
                          f"const REAL {ident} = mc_smem[{slot} * mc_T]"
                          + (" / (REAL)mc_n;" if b.kind == "mean" else ";")]
        return lines

    def _loop_observe(self, k: Kernel, g: int, block: bool) -> list[str]:
        prog = self.observe
        levels = range(prog.depth + 1) if block else range(1)
        outputs = [n for level in levels for n in self.outputs_of(g, level)]
        if not outputs:
            return []
        lines = ["/* recorded algebraic variables (only those asked for are written) */"]
        targets = [symbol(n) for n in outputs] + [b.arg for b in prog.barriers.values()]
        outer = {"time": "(REAL)(mc_t0 + (double)(mc_step + 1) * mc_dt64)", "input": "mc_local",
                 "state": lambda name: f"mc_s_{self.ident(name)}"}
        _, base = self._closure(prog, targets if block else [symbol(n) for n in outputs])
        for name in sorted(base, key=lambda n: ({"time": 0, "input": 1, "state": 2}.get(self.kind(n, prog), 9), n)):
            if self.kind(name, prog) in ("time", "input", "state"):
                lines += self._emit(k, prog, [symbol(name)], outer)
        inner = {"state": None, "input": None, "time": None, "barrier": None}
        guard = "mc_active && " if block else ""
        for level in levels:
            level_outputs = self.outputs_of(g, level)
            args = [b for b in prog.barriers.values() if b.level == level] if block else []
            if not level_outputs and not args:
                continue
            body = self._emit(k, prog, [symbol(n) for n in level_outputs] + [b.arg for b in args], inner)
            for n in level_outputs:
                body += self._record_lines(k, n, self.ident(n), guard)
            for b in args:
                body.append(f"mc_smem[{self.slots[b.name]} * mc_T + mc_tid] = "
                            f"mc_active ? ({self.c(b.arg)}) : {self.lit(0)};")
            lines += ["{"] + ["    " + line for line in body] + ["}"]
            if args:
                lines.append("MODELC_SYNC();")
                lines += self._block_results(k, args)
                lines.append("MODELC_SYNC();")
        k.arg("const int* __restrict__", "mc_recflags")
        k.arg("long long", "mc_observe")
        return ["if (mc_observe) {  /* some algebraic variable is recorded (the same for the whole block) */"] + \
            ["    " + line for line in lines] + ["}"]

    # -- all kernels ---------------------------------------------------------------------------

    @property
    def has_barriers(self) -> bool:
        return bool(self.stage.barriers)

    @property
    def slots(self) -> dict[str, int]:
        names = list(self.stage.barriers) + list(self.observe.barriers)
        return {name: k for k, name in enumerate(names)}

    def observe_levels(self) -> dict[str, int]:
        return {n: self.observe.level[n] for n in self.observe.outputs}

    def kernels(self) -> list[Kernel]:
        if self._kernels is None:
            ks: list[Kernel] = []
            G = range(len(self.groups))
            for g in G:
                if (p := self._prologue_kernel(g)) is not None:
                    ks.append(p)
            for s in range(self.stages):
                for g in G:
                    ks += self._stage_kernels(s, g)
            for g in G:
                ks += self._observe_kernels(g)
            if not self.has_barriers:
                ks += [self._loop_kernel(g, block=False) for g in G if self.states_of(g)]
            if len(self.groups) == 1 and self.states_of(0) and (self.has_barriers or self.observe.barriers):
                ks.append(self._loop_kernel(0, block=True))
            if any(b.kind in ("mean", "sum") for p in (self.stage, self.observe) for b in p.barriers.values()):
                ks.append(self._reduce_kernel())
            self._kernels = ks
        return self._kernels

    def _reduce_kernel(self) -> Kernel:
        k = Kernel("mc_reduce", "reduce", -1, "one block per row: out[b] = sum(x[b, :]) / divisor")
        for ctype, key in (("const REAL* __restrict__", "mc_x"), ("REAL* __restrict__", "mc_out"),
                           ("long long", "mc_n"), ("REAL", "mc_divisor")):
            k.arg(ctype, key)
        zero = self.lit(0)
        k.body = ["MODELC_SMEM;",
                  "const long long mc_b = blockIdx.x;",
                  "const long long mc_tid = threadIdx.x;",
                  "const long long mc_T = blockDim.x;",
                  f"REAL mc_acc = {zero};",
                  "for (long long mc_q = mc_tid; mc_q < mc_n; mc_q += mc_T) mc_acc += mc_x[mc_b * mc_n + mc_q];",
                  "mc_smem[mc_tid] = mc_acc;",
                  "MODELC_SYNC();",
                  "for (long long mc_h = mc_T / 2; mc_h > 0; mc_h /= 2) {",
                  "    if (mc_tid < mc_h) mc_smem[mc_tid] += mc_smem[mc_tid + mc_h];",
                  "    MODELC_SYNC();",
                  "}",
                  "if (mc_tid == 0) mc_out[mc_b] = mc_smem[0] / mc_divisor;"]
        return k

    # -- ops: what the Python side launches, in order ---------------------------------------

    def _barrier_ops(self, prog: Program, level: int) -> list[tuple[str, str]]:
        return [("matvec" if b.kind == "matvec" else "reduce", b.name)
                for b in prog.barriers.values() if b.level == level]

    def step_ops(self) -> list[tuple[str, str]]:
        names = {k.name for k in self.kernels()}
        ops: list[tuple[str, str]] = []
        G = range(len(self.groups))
        for s in range(self.stages):
            depth = self.stage.depth
            for level in range(depth):
                if level > 0:
                    ops += [("kernel", f"mc_stage{s + 1}_l{level}_g{g}") for g in G
                            if f"mc_stage{s + 1}_l{level}_g{g}" in names]
                ops += self._barrier_ops(self.stage, level)
            ops += [("kernel", f"mc_stage{s + 1}_g{g}") for g in G if f"mc_stage{s + 1}_g{g}" in names]
        return ops

    def prologue_ops(self) -> list[tuple[str, str]]:
        names = {k.name for k in self.kernels()}
        return [("kernel", f"mc_prologue_g{g}") for g in range(len(self.groups)) if f"mc_prologue_g{g}" in names]

    def observe_ops(self) -> list[tuple[str, str]]:
        names = {k.name for k in self.kernels()}
        ops: list[tuple[str, str]] = []
        for level in range(self.observe.depth + 1):
            ops += [("kernel", f"mc_observe_l{level}_g{g}") for g in range(len(self.groups))
                    if f"mc_observe_l{level}_g{g}" in names]
            ops += self._barrier_ops(self.observe, level)
        return ops

    def barrier_table(self) -> dict[str, dict]:
        """For the Python side: every barrier's arrays, groups, matrix and program."""
        table = {}
        for prog in (self.stage, self.observe):
            for b in prog.barriers.values():
                ident = self.ident(b.name)
                table[b.name] = {"kind": b.kind, "arg": f"mc_arg_{ident}", "res": f"mc_res_{ident}",
                                 "weights": f"mc_w_{ident}" if b.kind == "matvec" else None,
                                 "scale": f"mc_scale_{ident}" if b.kind == "matvec" else None,
                                 "matrix": b.matrix, "group": b.group, "target": b.target,
                                 "program": prog.kind, "slot": self.slots[b.name]}
        return table

    def buffers(self) -> dict[str, int]:
        """Device arrays the graph/stream strategies need besides states: key -> group (-1: one per batch member)."""
        out: dict[str, int] = {}
        for k in self.kernels():
            if k.kind != "elem":
                continue
            for _, key in k.params:
                if re.match(r"mc_(ys|k\d+)_", key):
                    out[key] = self._buffer_group(key)
        for b in self.barrier_table().values():
            out[b["arg"]] = b["group"]
            out[b["res"]] = b["target"] if b["kind"] == "matvec" else -1
        return out

    def _buffer_group(self, key: str) -> int:
        ident = key[len("mc_ys_"):] if key.startswith("mc_ys_") else key.split("_", 2)[2]
        for name in self.system.states:
            if self.ident(name) == ident:
                return self.group_of(name)
        raise UnsupportedFeatureError(f"internal error: no state for buffer {key}")  # pragma: no cover

    # -- host-side Python (hoisted constants, folded coefficients, rhs on the device) -------

    def host_lines(self) -> list[str]:
        """Body of _constants(params, dt): the plan's hoisted values and every coupling's coefficient."""
        names = {n: self.ident(n) for n in self.system.params}
        names.update({h: self.ident(h) for h in self.hoisted})
        names[DT.name] = "dt"
        printer = NumPyPrinter(names)
        lines = [f"{self.ident(n)} = params[{n!r}]" for n, p in self.system.params.items() if p.shape != "matrix"]
        lines += [f"{self.ident(h)} = {printer.doprint(e)}" for h, e in self.hoisted.items()]
        lines.append("hoisted = {" + ", ".join(f"{self.ident(h)!r}: {self.ident(h)}" for h in self.hoisted) + "}")
        scales = {b.name: printer.doprint(b.scale) for b in self.stage.barriers.values() if b.kind == "matvec"}
        scales.update({b.name: "1.0" for b in self.observe.barriers.values() if b.kind == "matvec"})
        lines.append("scales = {" + ", ".join(f"{n!r}: {text}" for n, text in scales.items()) + "}")
        return lines

    def device_lines(self, which: str) -> list[tuple[str, str]]:
        """Array code for algebraics()/rhs() on the device: NumPy's printer, spelled for CuPy."""
        names = dict(self.names)
        names[TIME.name] = "t"
        printer = NumPyPrinter(names)

        def cupy(text: str) -> str:
            return re.sub(r"\bnp\.", "cp.", text)

        if which == "algebraics":
            return [(n, cupy(printer.doprint(e))) for n, e in self.system.algebraics]
        return [(n, cupy(printer.doprint(e))) for n, e in self.system.derivatives.items()]

    def uses_exprel(self) -> bool:
        exprs = [e for _, e in self.system.algebraics] + list(self.system.derivatives.values())
        return any(e.has(Exprel) for e in exprs)

    # -- layout ---------------------------------------------------------------------------------

    def comment_name(self) -> str:
        """The system's name as it may appear in a C comment inside a Python raw string."""
        return re.sub(r"[^\w./:\- ]", "_", str(self.system.name))

    def kernel_table(self) -> dict[str, dict]:
        return {k.name: {"kind": k.kind, "group": k.group, "args": k.keys} for k in self.kernels()}

    def values(self) -> dict[str, dict]:
        """How the run-time values reach kernels: scalars by value, arrays by pointer."""
        vectors = {}
        for name in sorted(self.vectors):
            if name in self.system.params:
                vectors[self.ident(name)] = ("param", name, self.group_of(name))
            else:
                owners = [s.name for s in self.hoisted[name].free_symbols if s.name in self.vector_params]
                vectors[self.ident(name)] = ("hoisted", self.ident(name), self.group_of(sorted(owners)[0]))
        scalars = {}
        for name, p in self.system.params.items():
            if p.shape == "scalar":
                scalars[self.ident(name)] = ("param", name)
        for h in self.hoisted:
            if h not in self.vectors:
                scalars[self.ident(h)] = ("hoisted", self.ident(h))
        return {"vectors": vectors, "scalars": scalars}

    def source(self, kernels: list[Kernel] | None = None) -> str:
        """The CUDA C source of the kernels (all of them by default)."""
        kernels = self.kernels() if kernels is None else kernels
        text = "\n".join(line for k in kernels for line in k.top + k.body)
        return environment().get_template("cupy/kernels.cu.j2").render(
            m=self, kernels=kernels, dtype=self.dtype, ctype="float" if self.dtype == "float32" else "double",
            helpers=c_helpers(self.dtype, text), system=self.system)


# --- entry points -------------------------------------------------------------------------

def module_context(system: System, plan: Plan, key: str, version: str, dtype: str) -> dict:
    """The variables of templates/cupy/module.py.j2."""
    m = CuPyModule(system, plan, dtype)
    kernels = m.kernels()
    return {
        **common_context(system, plan.scheme, m.ident, key, version, dtype),
        "m": m,
        "cuda_source": m.source(kernels),
        "idents": {n: m.ident(n) for n in system.outputs + list(system.inputs)},
        "groups": m.groups,
        "kernel_table": m.kernel_table(),
        "barrier_table": m.barrier_table(),
        "buffers": m.buffers(),
        "values": m.values(),
        "step_ops": m.step_ops(),
        "prologue_ops": m.prologue_ops(),
        "observe_ops": m.observe_ops(),
        "observe_levels": m.observe_levels(),
        "fused": {g: f"mc_fused_g{g}" for g in range(len(m.groups)) if any(k.name == f"mc_fused_g{g}" for k in kernels)},
        "persistent": "mc_persistent_g0" if any(k.name == "mc_persistent_g0" for k in kernels) else None,
        "state_group": {n: m.group_of(n) for n in system.states},
        "output_group": {n: m.group_of(n) for n in system.outputs},
        "input_group": {n: m.group_of(n) for n in system.inputs},
        "has_barriers": m.has_barriers,
        "uses_exprel": m.uses_exprel(),
    }


def cupy_module(system: System, method: str = "euler", dtype: str = "float64") -> CuPyModule:
    return CuPyModule(system, make_plan(system, get_scheme(method)), dtype)


def kernel_sources(system: System, method: str = "euler", dtype: str = "float64") -> dict[str, str]:
    """Every kernel of a system as a complete CUDA C source (preamble, helpers, the kernel)."""
    m = cupy_module(system, method, dtype)
    return {k.name: m.source([k]) for k in m.kernels()}


def module_source(system: System, method: str = "euler", dtype: str = "float64") -> str:
    """The CUDA C source of all kernels of a system, as the generated module embeds it."""
    return cupy_module(system, method, dtype).source()


__all__ = ["module_context", "kernel_sources", "module_source", "cupy_module", "CuPyModule", "Kernel",
           "Barrier", "Program"]
