"""The CuPy backend's reverse sweep: grad()'s kernels, from the ops of grad_ops.py.

grad() has the NumPy backend's contract and checkpointing (the states at the start of each
segment; each segment integrated again, then swept backwards). The ops of a step (grad_ops.py:
the step program and adjoint.py's reverse step as Elem, MatMul and Reduce over keys) are
printed with the C printer in two strategies:

    graph   consecutive Elems of a group between two barriers are ONE fused kernel, matmuls are
            cuBLAS, reductions the mc_reduce kernel; a step's last kernel also begins the next
            step; each repeated segment is captured in a CUDA graph and replayed
    block   one kernel runs a whole segment: a thread block per batch member for one population
            group that fits a block (barriers in shared memory), or a thread per element when
            there is no barrier at all

Per chunk, on the host side: the drives' and the weights' adjoints (one matmul per product),
like the NumPy backend; at the end, the invariants' chain (lines printed here, NumPy printer).
"""
from __future__ import annotations

import sympy

from ...equations import TIME
from ...errors import UnsupportedFeatureError
from ..adjoint import ReverseObservation, ReverseStep
from ..c_printer import CPrinter, helpers_of
from ..plan import DT
from ..printers import NumPyPrinter
from ..step import OBSERVE, Value
from .grad_ops import Elem, GradientOps, MatMul, Reduce, is_time, runs
from .kernel import Kernel, block
from .kernels import finish
from .loops import BLOCK_INDEX

ROW = "(mc_step + 1) % mc_sampling == 0 ? (mc_step + 1) / mc_sampling - 1 : -1"   # a step's record row, or -1


class GradientKernels(GradientOps):
    """grad()'s kernels (both strategies) and the tables its template reads, for one CuPy module."""

    def __init__(self, m, reverse: ReverseStep, observed: ReverseObservation):
        super().__init__(m, reverse, observed)
        self.kernels: list[Kernel] = []
        lists = {"forward": self.forward, "reverse": self.reverse_plain, "observed": self.reverse_observed}
        self.ops = {name: self._kernels(name, ops) for name, ops in lists.items()}
        self.pipelines = self._pipelines(lists)
        self.coupling_idents = {name: self.m.namer.fresh(name.split("/")[-1]) for name in self.couplings}
        if len(self.layout.groups) == 1:
            self.kernels.append(self._block_kernel())

    # -- kernels ------------------------------------------------------------------------------

    def _kernels(self, what: str, ops) -> list[tuple]:
        """The launches of one op list: ("kernel", name) and ("matmul", out, source, coupling, transposed)."""
        launches = []
        for part in runs(ops):
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
            parts = runs(ops)
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
            if any(is_time(key) and key[1].stage != OBSERVE for key in reads):
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
        if is_time(key):
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


__all__ = ["GradientKernels"]
