"""One generated kernel, and how any kernel binds values and prints statements.

A Kernel records, while it is built, everything its text will need: its C parameters (and the
run-time value each one takes), what its body reads besides them (`uses`: the step index, the
time, dt, the unit index, shared memory), the C helper functions its expressions call and the
device buffers of the graph/stream strategies it touches. Nothing reads the printed text back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy

from ...equations import symbol
from ..c_printer import CPrinter, helpers_of
from ..step import Check, Combine, Noise, Rate, Reset, Value
from .program import Barrier, Layout, Program, RateTerms
from .steps import StepSections

# What a kernel body may read besides its arguments (the kernel's preamble defines it):
#   step        mc_step, the step's index            time        mc_t0, mc_dt64 (double precision)
#   step time   mc_tstep, the step's start time      dt          mc_dt in the kernel's precision
#   batch member mc_b                                 unit        mc_j (and mc_b)
#   shared memory mc_smem
USES = frozenset({"step", "step time", "time", "dt", "batch member", "unit", "shared memory"})


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
    uses: set[str] = field(default_factory=set)
    helpers: set[str] = field(default_factory=set)                 # C helper functions called
    buffers: dict[str, int] = field(default_factory=dict)         # graph/stream device arrays: key -> group
    spikes: set = field(default_factory=set)                       # (emitted input, suffix): spike trains read

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

    def buffer(self, key: str, group: int, write: bool = False) -> str:
        """A device array the graph/stream strategies allocate for the step's values (B, n of the group)."""
        self.buffers[key] = group
        return self.array(key, write)

    def use(self, *what: str) -> None:
        unknown = set(what) - USES
        if unknown:
            raise ValueError(f"internal error: a kernel cannot use {sorted(unknown)}")
        self.uses.update(what)

    def load(self, line: str) -> None:
        if line not in self.top:
            self.top.append(line)

    @property
    def keys(self) -> list[str]:
        return [key for _, key in self.params]

    def signature(self) -> str:
        params = ",\n    ".join(f"{ctype} {key.split('@')[0]}" for ctype, key in self.params)
        return f"MODELC_KERNEL void {self.name}(\n    {params})"


def element_index(k: Kernel) -> list[str]:
    """Element mc_i of a thread (one thread per element; those past the end return) and, when
    the kernel uses them, its batch member mc_b and unit mc_j."""
    lines = ["const long long mc_i = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
             "if (mc_i >= mc_E) return;"]
    if k.uses & {"batch member", "unit"}:
        lines.append("const long long mc_b = mc_i / mc_n;")
    if "unit" in k.uses:
        lines.append("const long long mc_j = mc_i - mc_b * mc_n;")
    return lines


def _real_literal(value) -> str:
    """A double literal for host-precision arithmetic in kernels (time)."""
    text = repr(float(value))
    return text if ("." in text or "e" in text) else text + ".0"


def block(lines: list[str], head: str = "{") -> list[str]:
    """Lines in a C block (a nested scope, or the body of `head`)."""
    return [head] + ["    " + line for line in lines] + ["}"]


# How a kernel binds what an expression reads: "state" -> fn(name) -> C text, "time" -> fn() -> C text,
# "input" -> the row of the chunk's inputs (C text), "barrier" -> fn(name) -> C text. A name the
# scope leaves out (or None) is bound outside, in an enclosing C scope.
Scope = dict


class KernelWriter:
    """What every kernel does alike: bind the values its expressions read, compute definitions,
    print the step program's statements, write records."""

    def __init__(self, layout: Layout, steps: StepSections, names: dict[str, str], dtype: str):
        self.layout, self.steps, self.names = layout, steps, names
        self.system = layout.system
        self.printer = CPrinter(names, dtype)

    def ident(self, name: str) -> str:
        return self.names[name]

    def code(self, k: Kernel, expr: sympy.Expr) -> str:
        k.helpers |= helpers_of(expr)
        return self.printer.doprint(expr)

    def lit(self, value) -> str:
        return self.printer.literal(float(value))

    # -- binding values, computing definitions ----------------------------------------------

    def bind_outer(self, k: Kernel, prog: Program, targets, scope: Scope) -> list[str]:
        """Bind only the time, inputs and states the targets read (once, for the nested C scopes
        that compute the definitions)."""
        _, base = prog.closure(targets)
        outer = [symbol(n) for n in base if self.layout.kind(n, prog) in ("time", "input", "state", "emitted")]
        return self.emit(k, prog, outer, scope)

    def emit(self, k: Kernel, prog: Program, targets, scope: Scope) -> list[str]:
        """Bind what the targets read (as `scope` says) and compute the definitions they need.

        Scalars become kernel arguments, per-unit constants loads at the kernel's top."""
        order, base = prog.closure(targets)
        bind_order = {"time": 0, "input": 1, "state": 2, "emitted": 3, "barrier": 4}
        lines = []
        for name in sorted(base, key=lambda n: (bind_order.get(self.layout.kind(n, prog), 9), n)):
            kind = self.layout.kind(name, prog)
            if kind in ("dt", "scalar", "vector"):
                self._kernel_value(k, name, kind)
                continue
            if kind == "input":
                text = None if scope.get("input") is None else self.input_load(k, name, scope["input"])
            elif kind == "time":
                text = None if scope.get("time") is None else scope["time"]()
            else:   # state, emitted, barrier
                text = None if scope.get(kind) is None else scope[kind](name)
            if text is not None:
                lines.append(f"const REAL {self.ident(name)} = {text};")
        for name in order:
            lines.append(f"const REAL {self.ident(name)} = {self.code(k, prog.defs[name])};")
        return lines

    def _kernel_value(self, k: Kernel, name: str, kind: str) -> None:
        """Scalars are kernel arguments, arrays of constants are loaded once at the kernel's top."""
        if kind == "dt":
            k.use("dt")
        elif kind == "scalar":
            k.arg("REAL", self.ident(name))
        else:
            ident = self.ident(name)
            k.array(f"mc_p_{ident}")
            k.load(f"const REAL {ident} = mc_p_{ident}[mc_i];")

    def input_load(self, k: Kernel, name: str, row: str) -> str:
        """An input's value in a row of the chunk's inputs (its strides are kernel arguments)."""
        ident = self.ident(name)
        k.array(f"mc_in_{ident}")
        for stride in ("rs", "bs", "js"):
            k.arg("long long", f"mc_{stride}_{ident}")
        k.use("batch member", "unit")
        return f"mc_in_{ident}[({row}) * mc_rs_{ident} + mc_b * mc_bs_{ident} + mc_j * mc_js_{ident}]"

    @staticmethod
    def time(k: Kernel, step: int, fraction) -> str:
        """The time t + fraction*dt of this step (step 0) or the next one (1), in double precision."""
        k.use("step", "time", *(("step time",) if step == 0 else ()))
        start = "mc_tstep" if step == 0 else "mc_t0 + (double)(mc_step + 1) * mc_dt64"
        if fraction:
            return f"(REAL)({start} + {_real_literal(fraction)} * mc_dt64)"
        return f"(REAL){start}" if step == 0 else f"(REAL)({start})"

    def result_scope(self, k: Kernel, prog: Program) -> Callable[[str], str]:
        def barrier(name: str) -> str:
            b = prog.barriers[name]
            key = f"mc_res_{self.ident(name)}"
            k.array(key)
            if b.kind != "matvec":
                k.use("batch member")
                return f"{key}[mc_b]"
            if b.scale == 1:
                return f"{key}[mc_i]"
            # the coupling's coefficient is applied to the product (the weights stay as given)
            return f"{k.arg('REAL', f'mc_scale_{self.ident(name)}')} * {key}[mc_i]"
        return barrier

    def arg_lines(self, k: Kernel, prog: Program, barriers: list[Barrier], scope: Scope,
                  store: str = "global") -> list[str]:
        """Compute barrier arguments in a nested scope and store them (global array or shared memory)."""
        if not barriers:
            return []
        lines = self.emit(k, prog, [b.arg for b in barriers], scope)
        for b in barriers:
            lines.append(self.store_arg(k, b, store))
        return block(lines)

    def store_arg(self, k: Kernel, b: Barrier, store: str) -> str:
        ident = self.ident(b.name)
        if store == "global":
            k.array(f"mc_arg_{ident}", write=True)
            return f"mc_arg_{ident}[mc_i] = {self.code(k, b.arg)};"
        k.use("shared memory")
        return (f"mc_smem[{self.layout.slots[b.name]} * mc_T + mc_tid] = "
                f"mc_active ? ({self.code(k, b.arg)}) : {self.lit(0)};")

    def record_lines(self, k: Kernel, name: str, value: str, guard: str = "") -> list[str]:
        """Write value into row mc_row of the record of output `name`, when that output is recorded."""
        ident = self.ident(name)
        k.array(f"mc_rec_{ident}", write=True)
        k.arg("const int* __restrict__", "mc_recflags")
        index = self.system.outputs.index(name)
        return [f"if ({guard}mc_recflags[{index}]) mc_rec_{ident}[mc_row * mc_E + mc_i] = {value};"]

    def record_row(self, k: Kernel) -> str:
        k.use("step")
        return "const long long mc_row = (mc_step + 1) / mc_sampling - 1;"

    def at_record_step(self, k: Kernel, lines: list[str]) -> list[str]:
        """Lines that run after a step whose values are recorded (every sampling_steps steps)."""
        k.arg("long long", "mc_sampling")
        return block([self.record_row(k)] + lines, "if ((mc_step + 1) % mc_sampling == 0) {")

    # -- the step program's statements -------------------------------------------------------

    def terms(self, rate: Rate) -> RateTerms:
        return self.layout.stage.rates[rate.state.name]

    def combine(self, k: Kernel, s: Combine, value: Callable[[Value], str]) -> str:
        """base + a_0*dt*v_0 + ... (left to right, the NumPy backend's order) + c_0*g_0*dW + ..."""
        if s.terms:
            k.use("dt")
        return " + ".join([value(s.base)] + [f"{self.lit(a)} * mc_dt * {value(v)}" for a, v in s.terms] +
                          self.noise_terms(s.noise, value))

    def noise_terms(self, noise, value: Callable[[Value], str]) -> list[str]:
        return [value(v) if c == 1 else f"{self.lit(c)} * {value(v)}" for c, v in noise]

    # -- white noise: g*dW, dW = sqrt(dt)*z from the chunk's normals --------------------------

    def noise_reads(self, s: int, g: int) -> list[sympy.Expr]:
        """The diffusion coefficients stage s of group g evaluates."""
        return [self.diffusion(n) for n in self.steps.noise_of(s) if self.layout.group_of(n.target.name) == g]

    def diffusion(self, n: Noise) -> sympy.Expr:
        """g of a noise draw; one for the whole chunk (reading no stage value) is taken in stage 0."""
        return self.layout.stage.noise[n.target.name]

    def noise_lines(self, k: Kernel, s: int, g: int, value: Callable[[Value], str], declare: str) -> list[str]:
        """g*dW of stage s's draws of group g: dW = sqrt(dt)*z of this step and unit, from the
        chunk's block of normals mc_z (batch member, step, noisy unit), already scaled by sqrt(dt)."""
        lines = []
        for n in self.steps.noise_of(s):
            if self.layout.group_of(n.target.name) != g:
                continue
            ident = self.ident(n.target.name)
            z = k.array("mc_z")
            for key in ("mc_rows", "mc_U", f"mc_off_{ident}"):
                k.arg("long long", key)
            k.use("batch member", "unit")
            dw = f"{z}[(mc_b * mc_rows + mc_local) * mc_U + mc_off_{ident} + mc_j]"
            lines.append(f"{declare}{value(n.target)} = ({self.code(k, self.diffusion(n))}) * {dw};")
        return lines

    def rate(self, k: Kernel, rate: Rate, target: str, declare: str) -> list[str]:
        """The plan's sum for one state: the stage's derivative, or (dt folded in) the new value,
        summed in the NumPy backend's order. The state and every expression read the stage's
        own values by their identifiers (the kernel's scope binds them); `declare` is the C
        declaration of the target ("" when it is declared before)."""
        u = self.terms(rate)
        x = self.ident(rate.state.name)
        added = [self.ident(p) for p in u.products]
        added += [self.code(k, u.rest)] if u.rest != 0 else []
        added += [f"({self.code(k, u.drive)})"] if u.drive != 0 else []
        if rate.target.role == "new":   # x_new = a*x + (dt*c*W) @ y + dt*rest + dt*drive + g*dW, term by term
            added += self.noise_terms(rate.noise, self.noise_value)
            first = x if u.linear == 1 else f"{x} * {self.code(k, u.linear)}"
            return [f"{declare}{target} = {first};"] + [f"{target} += {term};" for term in added]
        linear = [f"{self.code(k, u.linear)} * {x}"] if u.linear != 0 else []
        return [f"{declare}{target} = {' + '.join(linear + added) or self.lit(0)};"]

    def noise_value(self, v: Value) -> str:
        """The register of a g*dW value (an Euler step's: read in its own stage)."""
        return f"mc_w{v.stage}_{self.ident(v.name)}"

    # -- events (step.py says what a step does with them) -----------------------------------

    def checks_of(self, g: int) -> list[Check]:
        return [c for c in self.steps.checks if self.layout.group_of(c.event) == g]

    def resets_of(self, g: int) -> list[Reset]:
        return [r for r in self.steps.resets if self.layout.group_of(r.event) == g]

    def spike_train(self, k: Kernel, suffix: str = "") -> Callable[[str], str]:
        """How a kernel reads an emitted input: the register fired / dt of its event, which
        check_lines declares (suffix: the next step's, in the graph strategy's last kernel)."""
        def text(name: str) -> str:
            k.spikes.add((name, suffix))
            return f"mc_e{suffix}_{self.ident(name)}"
        return text

    def check_lines(self, k: Kernel, g: int, scope: Scope, suffix: str = "", every: bool = False) -> list[str]:
        """Check and Emit of group g's events on the states `scope` binds (the step's start):
        mc_f_<event> (fired), mc_h_<event> (held: refractory) and the spike trains the kernel
        has read (call it after the lines that read them); `every` event, or only those."""
        trains = {name: event for name, event in self.steps.emits.items() if (name, suffix) in k.spikes}
        checks = [c for c in self.checks_of(g) if every or c.event in trains.values()]
        if not checks:
            return []
        lines, inner = [], []
        for c in checks:
            e = self.ident(c.event)
            lines.append(f"int mc_f{suffix}_{e} = 0;")
            condition = f"({self.code(k, c.condition)})"
            if c.refractory:
                k.use("time")
                lines.append(f"int mc_h{suffix}_{e} = 0;")
                inner.append(f"mc_h{suffix}_{e} = {self.ident(c.refractory)} > (REAL)(0.5 * mc_dt64);")
                condition += f" && !mc_h{suffix}_{e}"
            inner.append(f"mc_f{suffix}_{e} = {condition};")
        reads = [c.condition for c in checks] + [symbol(c.refractory) for c in checks if c.refractory]
        lines += block(self.emit(k, self.layout.stage, reads, scope) + inner)
        for name, event in trains.items():
            if self.layout.group_of(event) == g:
                k.use("dt")
                lines.append(f"const REAL mc_e{suffix}_{self.ident(name)} = (REAL)mc_f{suffix}_{self.ident(event)} / mc_dt;")
        return lines

    def reset_lines(self, k: Kernel, g: int, scope: Scope, new: Callable[[str], str]) -> list[str]:
        """Group g's Resets: where the event fired (or is held), the reset values, all computed
        from the new states (`scope`) first, replace them (`new(state)`: an assignable register);
        the clock takes the refractory time where the event fired."""
        lines = []
        for r in self.resets_of(g):
            e = self.ident(r.event)
            if r.assignments:
                values = [v for _, v in r.assignments]
                body = self.emit(k, self.layout.stage, values, scope)
                body += [f"const REAL mc_r{i} = {self.code(k, v)};" for i, v in enumerate(values)]
                body += [f"{new(state)} = mc_r{i};" for i, (state, _) in enumerate(r.assignments)]
                lines += block(body, f"if (mc_f_{e}{f' || mc_h_{e}' if r.held else ''}) {{")
            if r.clock:
                body = self.emit(k, self.layout.stage, [r.duration], scope)
                lines += block(body + [f"{new(r.clock)} = {self.code(k, r.duration)};"], f"if (mc_f_{e}) {{")
        return lines

    def count_lines(self, k: Kernel, g: int, counter: Callable[[str], str]) -> list[str]:
        """Each of group g's events adds this step's spike to its count (`counter(event)`)."""
        return [f"{counter(c.event)} += (REAL)mc_f_{self.ident(c.event)};" for c in self.checks_of(g)]

    def record_counts(self, k: Kernel, g: int, counter: Callable[[str], str], guard: str = "") -> list[str]:
        """At a record step: each event's count of the row's steps into its record, then 0."""
        lines = []
        for c in self.checks_of(g):
            lines += self.record_lines(k, c.event, counter(c.event), guard)
            lines.append(f"{counter(c.event)} = {self.lit(0)};")
        return lines

    def record_states(self, k: Kernel, value: Callable[[Value], str], g: int, guard: str = "") -> list[str]:
        """The step's Records of group g's states."""
        return [line for r in self.steps.records if self.layout.group_of(r.state) == g
                for line in self.record_lines(k, r.state, value(r.value), guard)]

