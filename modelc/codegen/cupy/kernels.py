"""The kernels of the graph and stream strategies: one launch per stage, level and group.

A stage's argument kernels compute the barrier arguments of levels 1.. ; its final kernel
computes the rates, then what follows them in the step program (the values the next stage
starts from, or the update, the commit and the records) *and* the level-0 barrier arguments of
the next stage: so one stage of a model with one layer of couplings is one matmul plus ONE
fused kernel. Values live in registers inside a kernel and in device arrays between kernels:
a stage's starting values (mc_ys_*) and the rates a later kernel reads (mc_k<j>_*).
"""
from __future__ import annotations

from ...equations import symbol
from ..step import Value
from .kernel import Kernel, KernelWriter, block, element_index


class ElementKernels:
    """Kernels of one element per thread: stages, the first step's prologue, the record step's observation."""

    def __init__(self, writer: KernelWriter):
        self.w = writer
        self.layout, self.steps = writer.layout, writer.steps
        self.stored_rates = self.steps.rates_read_later() | self.steps.noise_read_later()

    # -- where the step's values live ---------------------------------------------------------

    def memory(self, k: Kernel, v: Value, write: bool = False) -> str:
        """The device array element that holds v between kernels: the step's states, a stage's
        starting values, a rate read after its own stage's kernel."""
        v = self.steps.resolve(v)
        ident, g = self.w.ident(v.name), self.layout.group_of(v.name)
        if v.role == "state" and v.stage == 0:
            return f"{k.array(f'mc_y_{ident}', write)}[mc_i]"
        key = {"state": f"mc_ys_{ident}", "noise": f"mc_gw{v.stage}_{ident}"}.get(v.role, f"mc_k{v.stage}_{ident}")
        return f"{k.buffer(key, g, write)}[mc_i]"

    def value(self, k: Kernel, s: int):
        """How the final kernel of stage s reads a value: its own rate and the values it computes
        for the next stage (or step) from registers, the rest from memory."""
        def text(v: Value) -> str:
            v = self.steps.resolve(v)
            if v.role == "rate" and v.stage == s:
                return f"mc_d_{self.w.ident(v.name)}"
            if v.role == "noise" and v.stage == s:
                return self.w.noise_value(v)
            if v.role == "new" or (v.role == "state" and v.stage == s + 1):
                return f"mc_n_{self.w.ident(v.name)}"
            return self.memory(k, v)
        return text

    def scope(self, k: Kernel, s: int) -> dict:
        """Stage s reads its states from memory, its time and this step's row of the inputs."""
        return {"state": lambda name: self.memory(k, Value(name, "state", s)), "input": "mc_local",
                "time": lambda: self.w.time(k, 0, self.steps.stages[s].stage.time),
                "barrier": self.w.result_scope(k, self.layout.stage), "emitted": self.w.spike_train(k)}

    def start_scope(self, k: Kernel) -> dict:
        """The step's start, where events are checked: its states in memory, its row, its time."""
        return {"state": lambda name: self.memory(k, Value(name, "state")), "input": "mc_local",
                "time": lambda: self.w.time(k, 0, 0)}

    def counter(self, k: Kernel):
        return lambda event: f"{k.array(f'mc_cnt_{self.w.ident(event)}', write=True)}[mc_i]"

    def finish_checks(self, k: Kernel, every: bool = False) -> None:
        """Events checked first (on the step's states, before the last kernel commits the new
        ones): those whose spike trains the kernel reads, or (the last kernel) every one."""
        k.body = self.w.check_lines(k, k.group, self.start_scope(k), every=every) + k.body

    # -- kernels ---------------------------------------------------------------------------------

    def kernel(self, name: str, g: int, doc: str) -> Kernel:
        k = Kernel(name, "elem", g, doc)
        k.arg("long long", f"mc_E@{g}")
        k.arg("long long", f"mc_n@{g}")
        return k

    def stage_kernels(self, s: int, g: int) -> list[Kernel]:
        """The kernels of stage s for group g: argument kernels of levels 1.., then the final one."""
        prog, stages = self.layout.stage, len(self.steps.stages)
        kernels = []
        for level in range(1, prog.depth):
            barriers = self.layout.args_of(prog, g, level)
            if barriers:
                k = self.kernel(f"mc_stage{s + 1}_l{level}_g{g}", g,
                                f"stage {s + 1} of {stages}, group {g}: arguments of the level-{level} couplings")
                k.body = self.w.arg_lines(k, prog, barriers, self.scope(k, s))
                self.finish_checks(k)
                kernels.append(finish(k))
        final = self.final_kernel(s, g)
        return kernels + ([final] if final is not None else [])

    def final_kernel(self, s: int, g: int) -> Kernel | None:
        """Stage s's rates, what follows them in the step program, the next stage's level-0 arguments."""
        prog, steps, w = self.layout.stage, self.steps, self.w
        rates = [r for r in steps.stages[s].rates if self.layout.group_of(r.state.name) == g]
        combines = [c for c in steps.after(s) if self.layout.group_of(c.target.name) == g]
        next_args = self.layout.args_of(prog, g, 0)
        if not rates and not combines and not next_args:
            return None
        last = s == steps.last
        what = "the update of the step" if last else f"the values of stage {s + 2}"
        k = self.kernel(f"mc_stage{s + 1}_g{g}", g, f"stage {s + 1} of {len(steps.stages)}, group {g}: "
                        f"derivatives, {what}, next coupling arguments")
        value = self.value(k, s)
        body = w.count_lines(k, g, self.counter(k)) if last else []   # the last kernel counts and resets
        body += w.emit(k, prog, prog.rate_reads(rates) + w.noise_reads(s, g), self.scope(k, s))
        body += w.noise_lines(k, s, g, value, "const REAL ")
        body += [f"{self.memory(k, n.target, write=True)} = {value(n.target)};" for n in steps.noise_of(s)
                 if self.layout.group_of(n.target.name) == g and n.target in self.stored_rates]
        for r in rates:
            declare = "REAL " if r.target.role == "new" else "const REAL "   # x_new is summed term by term
            body += w.rate(k, r, value(r.target), declare)
            if r.target in self.stored_rates:
                body.append(f"{self.memory(k, r.target, write=True)} = {value(r.target)};")
        for c in combines:
            if steps.resolve(c.target) != c.target:   # the stage starts from the step's own states
                continue
            body.append(f"{'REAL' if c.target.role == 'new' else 'const REAL'} {value(c.target)} = "
                        f"{w.combine(k, c, value)};")
            if c.target.role == "state":
                body.append(f"{self.memory(k, c.target, write=True)} = {value(c.target)};")
        if last:
            new = {**self.start_scope(k), "state": lambda name: value(Value(name, "new")),
                   "emitted": self.w.spike_train(k)}
            body += w.reset_lines(k, g, new, lambda name: value(Value(name, "new")))
            body += [f"{self.memory(k, Value(c.state, 'state'), write=True)} = {value(c.value)};"
                     for c in steps.commits if self.layout.group_of(c.state) == g]
            records = w.record_states(k, value, g) + w.record_counts(k, g, self.counter(k))
            body += w.at_record_step(k, records) if records else []
        if next_args:
            body += self.next_arguments(k, s, next_args)
        k.body = body
        self.finish_checks(k, every=last)
        return finish(k)

    def next_arguments(self, k: Kernel, s: int, barriers) -> list[str]:
        """The level-0 barrier arguments of the next stage (after the last stage: of the next step)."""
        last = s == self.steps.last
        value = self.value(k, s)
        stage = 0 if last else s + 1
        scope = {"state": lambda name: value(self.steps.next_state(s, name)),
                 "input": "mc_local + 1" if last else "mc_local",
                 "time": lambda: self.w.time(k, 1 if last else 0, self.steps.stages[stage].stage.time),
                 "emitted": self.w.spike_train(k, "n" if last else "")}
        what = "the next step" if last else f"stage {s + 2}"
        lines = self.w.arg_lines(k, self.layout.stage, barriers, scope)
        if last:   # the next step's events, checked on the new states
            checks = self.w.check_lines(k, k.group, {**scope, "time": lambda: self.w.time(k, 1, 0)}, "n")
            lines = block(checks + lines) if checks else lines
        return [f"/* arguments of the couplings of {what} */"] + lines

    def prologue_kernel(self, g: int) -> Kernel | None:
        args = self.layout.args_of(self.layout.stage, g, 0)
        if not args:
            return None
        k = self.kernel(f"mc_prologue_g{g}", g, f"group {g}: coupling arguments of the first step's stage 1")
        k.body = self.w.arg_lines(k, self.layout.stage, args, self.scope(k, 0))
        self.finish_checks(k)
        return finish(k)

    def observe_kernels(self, g: int) -> list[Kernel]:
        """At a record step: the recorded algebraics (and the couplings they need) from the new states."""
        prog, w = self.layout.observe, self.w
        kernels = []
        for level in range(prog.depth + 1):
            outputs = self.layout.outputs_of(g, level)
            barriers = self.layout.args_of(prog, g, level)
            if not outputs and not barriers:
                continue
            k = self.kernel(f"mc_observe_l{level}_g{g}", g, f"group {g}: recorded algebraic variables of level {level}")
            scope = {"state": lambda name: self.memory(k, Value(name, "state")), "input": "mc_local",
                     "time": lambda: w.time(k, 1, 0), "barrier": w.result_scope(k, prog),
                     "emitted": lambda name: w.lit(0)}   # (algebraics() sees no spikes)
            body = w.emit(k, prog, [symbol(n) for n in outputs] + [b.arg for b in barriers], scope)
            if outputs:
                k.arg("long long", "mc_sampling")
                k.arg("const int* __restrict__", "mc_recflags")
                body.append(w.record_row(k))
                for n in outputs:
                    body += w.record_lines(k, n, w.ident(n))
            body += [w.store_arg(k, b, "global") for b in barriers]
            k.body = body
            kernels.append(finish(k))
        return kernels


def finish(k: Kernel) -> Kernel:
    """The preamble of an element-wise kernel: its element, and what its body uses."""
    pre = element_index(k)
    if "step" in k.uses:
        k.arg("const long long* __restrict__", "mc_base")
        pre.append("const long long mc_step = mc_base[0] + mc_local;")
    if "dt" in k.uses:
        k.arg("REAL", "mc_dt")
    if "time" in k.uses:
        k.arg("double", "mc_t0")
        k.arg("double", "mc_dt64")
    if "step time" in k.uses:
        pre.append("const double mc_tstep = mc_t0 + (double)mc_step * mc_dt64;")
    k.top = pre + k.top
    k.arg("long long", "mc_local")   # always last: the step inside the chunk, given per launch
    return k


def reduce_kernel(writer: KernelWriter) -> Kernel:
    k = Kernel("mc_reduce", "reduce", -1, "one block per row: out[b] = sum(x[b, :]) / divisor")
    for ctype, key in (("const REAL* __restrict__", "mc_x"), ("REAL* __restrict__", "mc_out"),
                       ("long long", "mc_n"), ("REAL", "mc_divisor")):
        k.arg(ctype, key)
    k.use("shared memory")
    k.body = ["MODELC_SMEM;",
              "const long long mc_b = blockIdx.x;",
              "const long long mc_tid = threadIdx.x;",
              "const long long mc_T = blockDim.x;",
              f"REAL mc_acc = {writer.lit(0)};",
              "for (long long mc_q = mc_tid; mc_q < mc_n; mc_q += mc_T) mc_acc += mc_x[mc_b * mc_n + mc_q];",
              "mc_smem[mc_tid] = mc_acc;",
              "MODELC_SYNC();",
              "for (long long mc_h = mc_T / 2; mc_h > 0; mc_h /= 2) {",
              "    if (mc_tid < mc_h) mc_smem[mc_tid] += mc_smem[mc_tid + mc_h];",
              "    MODELC_SYNC();",
              "}",
              "if (mc_tid == 0) mc_out[mc_b] = mc_smem[0] / mc_divisor;"]
    return k
