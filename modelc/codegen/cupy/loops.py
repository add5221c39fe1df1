"""The kernels of the fused and persistent strategies: one launch runs every step of a chunk.

flat  (fused, no barriers): one thread per element, any number of elements.
block (persistent): one block per batch member, a thread per unit (n <= blockDim), barrier
      arguments in shared memory, couplings as block mat-vecs and tree reductions.

Every value of the step lives in a register: the state (mc_s_*), the rates a later statement
reads (mc_k<j>_*), the new values (mc_n_*). A stage's starting values are bound where the stage
begins, from the step program's Combines.
"""
from __future__ import annotations

from ...equations import symbol
from ..step import Value
from .kernel import Kernel, KernelWriter, block, element_index
from .program import Barrier

BLOCK_INDEX = ["const long long mc_T = blockDim.x;",
                "const long long mc_tid = threadIdx.x;",
                "const long long mc_b = blockIdx.x;",
                "const int mc_active = mc_tid < mc_n;",
                "const long long mc_j = mc_active ? mc_tid : mc_n - 1;",
                "const long long mc_i = mc_b * mc_n + mc_j;"]


class LoopKernels:
    def __init__(self, writer: KernelWriter):
        self.w = writer
        self.layout, self.steps = writer.layout, writer.steps

    def value(self, k: Kernel):
        """A value of the step in the loop: a register, or (a stage's starting value) its Combine."""
        def text(v: Value) -> str:
            v = self.steps.resolve(v)
            ident = self.w.ident(v.name)
            if v.role == "state":
                if v.stage == 0:
                    return f"mc_s_{ident}"
                return self.w.combine(k, self.steps.stages[v.stage].starts[v.name], text)
            if v.role == "noise":
                return self.w.noise_value(v)
            return f"mc_k{v.stage}_{ident}" if v.role == "rate" else f"mc_n_{ident}"
        return text

    def kernel(self, g: int, persistent: bool) -> Kernel:
        """One launch per chunk: every stage of every step of group g, in registers."""
        k = Kernel(f"mc_{'persistent' if persistent else 'fused'}_g{g}", "block" if persistent else "flat", g,
                   ("persistent: a block per batch member runs the steps of a chunk" if persistent else
                    "fused: each thread runs every stage of every step of a chunk for one element")
                   + f" (group {g})")
        for ctype, key in (("long long", f"mc_E@{g}"), ("long long", f"mc_n@{g}"), ("double", "mc_t0"),
                           ("double", "mc_dt64"), ("long long", "mc_sampling")):
            k.arg(ctype, key)
        states = self.layout.states_of(g)
        value = self.value(k)
        body = [f"REAL mc_s_{self.w.ident(n)} = {k.array(f'mc_y_{self.w.ident(n)}', write=True)}[mc_i];"
                for n in states]
        counts = [self.w.ident(c.event) for c in self.w.checks_of(g)]   # spikes of the record row so far
        body += [f"REAL mc_c_{e} = {k.array(f'mc_cnt_{e}', write=True)}[mc_i];" for e in counts]
        loop = self.step(k, g, persistent, value)
        head = ["const long long mc_step = mc_base + mc_local;"]
        if "step time" in k.uses:
            head.append("const double mc_tstep = mc_t0 + (double)mc_step * mc_dt64;")
        body += block(head + loop, "for (long long mc_local = 0; mc_local < mc_L; ++mc_local) {")
        guard = "if (mc_active) " if persistent else ""
        body += [f"{guard}mc_y_{self.w.ident(n)}[mc_i] = mc_s_{self.w.ident(n)};" for n in states]
        body += [f"{guard}mc_cnt_{e}[mc_i] = mc_c_{e};" for e in counts]
        k.body = body
        if persistent:
            k.top = (["MODELC_SMEM;"] if "shared memory" in k.uses else []) + BLOCK_INDEX + k.top
        else:
            k.top = element_index(k) + k.top
        if "dt" in k.uses:
            k.arg("REAL", "mc_dt")
        k.arg("long long", "mc_base")
        k.arg("long long", "mc_L")
        return k

    def step(self, k: Kernel, g: int, persistent: bool, value) -> list[str]:
        """One step: the stages, the update, the commits, and at a record step the records."""
        steps, w, group_of = self.steps, self.w, self.layout.group_of
        rates = [r for section in steps.stages for r in section.rates if group_of(r.state.name) == g]
        registers = [value(r.target) for r in rates]   # they outlive their stage's scope
        registers += [value(n.target) for n in steps.noise.values() if group_of(n.target.name) == g]
        lines = ["REAL " + ", ".join(registers) + ";"] if registers else []
        start = {"state": lambda name: value(Value(name, "state")), "input": "mc_local",
                 "time": lambda: w.time(k, 0, 0)}
        body = []
        for s in range(len(steps.stages)):
            body += block(self.stage(k, s, g, value))
        body += [f"REAL {value(c.target)} = {w.combine(k, c, value)};"
                 for c in steps.update.values() if group_of(c.target.name) == g]
        new = {**start, "state": lambda name: value(Value(name, "new")), "emitted": w.spike_train(k)}
        body += w.reset_lines(k, g, new, lambda name: value(Value(name, "new")))
        lines += w.check_lines(k, g, start, every=True) + w.count_lines(k, g, self.counter) + body
        lines += [f"{value(Value(c.state, 'state'))} = {value(c.value)};" for c in steps.commits
                  if group_of(c.state) == g]
        guard = "mc_active && " if persistent else ""
        return lines + w.at_record_step(k, w.record_states(k, value, g, guard) +
                                        w.record_counts(k, g, self.counter, guard) + self.observe(k, g, persistent))

    def counter(self, event: str) -> str:
        return f"mc_c_{self.w.ident(event)}"

    def stage(self, k: Kernel, s: int, g: int, value) -> list[str]:
        """Stage s: its states, time and inputs bound once; the barrier levels; the rates."""
        prog, w, section = self.layout.stage, self.w, self.steps.stages[s]
        rates = [r for r in section.rates if self.layout.group_of(r.state.name) == g]
        reads = prog.rate_reads(rates) + w.noise_reads(s, g)
        outer = {"time": lambda: w.time(k, 0, section.stage.time), "input": "mc_local",
                 "state": lambda name: value(Value(name, "state", s)), "emitted": w.spike_train(k)}
        lines = [f"/* stage {s + 1} of {len(self.steps.stages)} */"]
        lines += w.bind_outer(k, prog, reads + [b.arg for b in prog.barriers.values()], outer)
        for level in range(prog.depth):
            barriers = [b for b in prog.barriers.values() if b.level == level]
            lines += w.arg_lines(k, prog, barriers, {}, store="shared")
            lines += ["MODELC_SYNC();"] + self.block_results(k, barriers) + ["MODELC_SYNC();"]
        final = w.emit(k, prog, reads, {}) + w.noise_lines(k, s, g, value, "")
        for r in rates:
            final += w.rate(k, r, value(r.target), "")
        return lines + block(final)

    def block_results(self, k: Kernel, barriers: list[Barrier]) -> list[str]:
        """Barrier results inside a block: mat-vec over shared memory, tree reductions."""
        w, slots = self.w, self.layout.slots
        lines = []
        for b in barriers:
            ident, slot = w.ident(b.name), slots[b.name]
            if b.kind == "matvec":
                weights = k.array(f"mc_w_{ident}")
                lines += [f"REAL mc_sum_{ident} = {w.lit(0)};",
                          f"for (long long mc_q = 0; mc_q < mc_n; ++mc_q) "
                          f"mc_sum_{ident} += {weights}[mc_q * mc_n + mc_j] * mc_smem[{slot} * mc_T + mc_q];",
                          f"const REAL {ident} = mc_sum_{ident};"]
        for b in barriers:
            ident, slot = w.ident(b.name), slots[b.name]
            if b.kind in ("mean", "sum"):
                lines += ["for (long long mc_h = mc_T / 2; mc_h > 0; mc_h /= 2) {",
                          f"    if (mc_tid < mc_h) mc_smem[{slot} * mc_T + mc_tid] += "
                          f"mc_smem[{slot} * mc_T + mc_tid + mc_h];",
                          "    MODELC_SYNC();",
                          "}",
                          f"const REAL {ident} = mc_smem[{slot} * mc_T]"
                          + (" / (REAL)mc_n;" if b.kind == "mean" else ";")]
        return lines

    def observe(self, k: Kernel, g: int, persistent: bool) -> list[str]:
        """At a record step, the recorded algebraic variables (the persistent kernel: with the
        couplings and reductions they need)."""
        prog, w = self.layout.observe, self.w
        levels = range(prog.depth + 1) if persistent else range(1)
        outputs = [n for level in levels for n in self.layout.outputs_of(g, level)]
        if not outputs:
            return []
        lines = ["/* recorded algebraic variables (only those asked for are written) */"]
        targets = [symbol(n) for n in outputs] + ([b.arg for b in prog.barriers.values()] if persistent else [])
        value = self.value(k)
        outer = {"time": lambda: w.time(k, 1, 0), "input": "mc_local",
                 "state": lambda name: value(Value(name, "state")), "emitted": lambda name: w.lit(0)}  # (no spikes)
        lines += w.bind_outer(k, prog, targets, outer)
        guard = "mc_active && " if persistent else ""
        for level in levels:
            level_outputs = self.layout.outputs_of(g, level)
            barriers = [b for b in prog.barriers.values() if b.level == level] if persistent else []
            if not level_outputs and not barriers:
                continue
            body = w.emit(k, prog, [symbol(n) for n in level_outputs] + [b.arg for b in barriers], {})
            for n in level_outputs:
                body += w.record_lines(k, n, w.ident(n), guard)
            body += [w.store_arg(k, b, "shared") for b in barriers]
            lines += block(body)
            if barriers:
                lines += ["MODELC_SYNC();"] + self.block_results(k, barriers) + ["MODELC_SYNC();"]
        k.arg("const int* __restrict__", "mc_recflags")
        k.arg("long long", "mc_observe")
        return block(lines, "if (mc_observe) {  /* some algebraic variable is recorded (the same for the whole block) */")
