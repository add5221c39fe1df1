"""What the generated module's Python side launches, and the tables it reads to do it.

Ops are (kind, name) in launch order: ("kernel", name), ("matvec", barrier) (a cuBLAS matmul
into a preallocated array), ("reduce", barrier) (the mc_reduce kernel). The tables say which
run-time value each kernel argument takes, which device arrays to allocate, and how
parameters and loop invariants reach the kernels.
"""
from __future__ import annotations

from .kernel import Kernel
from .program import Layout, Program


class Launches:
    def __init__(self, layout: Layout, kernels: list[Kernel], stages: int, ident):
        self.layout, self.kernels, self.stages, self.ident = layout, kernels, stages, ident
        self.names = {k.name for k in kernels}

    def _kernel_ops(self, names) -> list[tuple[str, str]]:
        return [("kernel", name) for name in names if name in self.names]

    def _barrier_ops(self, prog: Program, level: int) -> list[tuple[str, str]]:
        return [("matvec" if b.kind == "matvec" else "reduce", b.name)
                for b in prog.barriers.values() if b.level == level]

    def step_ops(self) -> list[tuple[str, str]]:
        """One step: per stage, each level's argument kernels and barriers, then the final kernels."""
        ops: list[tuple[str, str]] = []
        groups = range(len(self.layout.groups))
        for s in range(self.stages):
            for level in range(self.layout.stage.depth):
                if level > 0:
                    ops += self._kernel_ops(f"mc_stage{s + 1}_l{level}_g{g}" for g in groups)
                ops += self._barrier_ops(self.layout.stage, level)
            ops += self._kernel_ops(f"mc_stage{s + 1}_g{g}" for g in groups)
        return ops

    def prologue_ops(self) -> list[tuple[str, str]]:
        return self._kernel_ops(f"mc_prologue_g{g}" for g in range(len(self.layout.groups)))

    def observe_ops(self) -> list[tuple[str, str]]:
        ops: list[tuple[str, str]] = []
        for level in range(self.layout.observe.depth + 1):
            ops += self._kernel_ops(f"mc_observe_l{level}_g{g}" for g in range(len(self.layout.groups)))
            ops += self._barrier_ops(self.layout.observe, level)
        return ops

    def barrier_table(self) -> dict[str, dict]:
        """For the Python side: every barrier's arrays, groups, matrix and program."""
        table = {}
        slots = self.layout.slots
        for prog in (self.layout.stage, self.layout.observe):
            for b in prog.barriers.values():
                ident = self.ident(b.name)
                matvec = b.kind == "matvec"
                table[b.name] = {"kind": b.kind, "arg": f"mc_arg_{ident}", "res": f"mc_res_{ident}",
                                 "weights": f"mc_w_{ident}" if matvec else None,
                                 "scale": f"mc_scale_{ident}" if matvec else None,
                                 "matrix": b.matrix, "group": b.group, "target": b.target,
                                 "program": prog.kind, "slot": slots[b.name]}
        return table

    def buffers(self) -> dict[str, int]:
        """Device arrays the graph/stream strategies need besides states: key -> group (-1: one per batch member)."""
        out: dict[str, int] = {}
        for k in self.kernels:
            out.update(k.buffers)
        for b in self.barrier_table().values():
            out[b["arg"]] = b["group"]
            out[b["res"]] = b["target"] if b["kind"] == "matvec" else -1
        return out

    def kernel_table(self) -> dict[str, dict]:
        return {k.name: {"kind": k.kind, "group": k.group, "args": k.keys} for k in self.kernels}

    def values(self) -> dict[str, dict]:
        """How the run-time values reach kernels: scalars by value, arrays by pointer."""
        layout, system = self.layout, self.layout.system
        vectors = {}
        for name in sorted(layout.vectors):
            if name in system.params:
                vectors[self.ident(name)] = ("param", name, layout.group_of(name))
            else:
                owners = [s.name for s in layout.hoisted[name].free_symbols if s.name in layout.vector_params]
                vectors[self.ident(name)] = ("hoisted", self.ident(name), layout.group_of(sorted(owners)[0]))
        scalars = {self.ident(name): ("param", name) for name, p in system.params.items() if p.shape == "scalar"}
        scalars.update({self.ident(h): ("hoisted", self.ident(h)) for h in layout.hoisted if h not in layout.vectors})
        return {"vectors": vectors, "scalars": scalars}
