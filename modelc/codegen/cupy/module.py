"""The CuPy module of one model: identifiers, every kernel, and the host-side Python code.

Ties the parts together: the step program (codegen/step.py) arranged by stage (steps.py), the
element-wise programs and groups (program.py), the kernels of the graph/stream strategies
(kernels.py) and of the fused/persistent ones (loops.py), and what the Python side launches
(launches.py). Host-side array code (rhs(), algebraics(), the loop invariants) is printed by
the NumPy printer, spelled for CuPy where it runs on the device.
"""
from __future__ import annotations

import re

from ...equations import TIME, Exprel
from ...errors import UnsupportedFeatureError
from ...ir import System
from ..c_printer import C_RESERVED, c_helpers
from ..layout import common_context, population_of
from ..naming import Namer
from ..options import DTYPES
from ..plan import DT, Plan, make_plan
from ..printers import NumPyPrinter
from ..schemes import get_scheme
from ..adjoint import make_reverse_observation, make_reverse_step
from ..step import make_observation, make_step_program
from ..templating import declared_names, environment
from .kernel import Kernel, KernelWriter
from .gradients import GradientKernels
from .kernels import ElementKernels, reduce_kernel
from .launches import Launches
from .loops import LoopKernels
from .program import Layout
from .steps import StepSections

# The templates whose code sits next to model identifiers (Python functions, kernel bodies): no
# identifier may take a name they declare.
TEMPLATES = ("cupy/module.py.j2", "cupy/kernels.cu.j2", "cupy/grad.py.j2")


class CNamer(Namer):
    """Readable identifiers that are valid (and free) in Python, C, C++ and CUDA at once.

    Generated names all start with `mc_`; a model variable never does."""

    @staticmethod
    def legal(base: str) -> str:
        base = Namer.legal(base)
        return "v_" + base if base.startswith("mc_") else base

    def free(self, candidate: str) -> bool:
        return super().free(candidate) and candidate not in C_RESERVED


class CuPyModule:
    """Everything the CuPy templates need, computed from a Plan and its step program."""

    def __init__(self, system: System, plan: Plan, dtype: str = "float64"):
        if dtype not in DTYPES:
            raise UnsupportedFeatureError(f"unsupported dtype '{dtype}'", None, f"choose one of {', '.join(DTYPES)}")
        self.system, self.plan, self.dtype = system, plan, dtype
        self.program = program = make_step_program(plan)
        self.layout = layout = Layout(system, plan)
        self.steps = StepSections(program)
        self.groups = layout.groups
        generated = list(layout.hoisted) + [n for n in layout.stage.defs if n not in system.outputs] + \
            list(layout.stage.barriers) + list(layout.observe.barriers)
        events = list(dict.fromkeys([e.name for e in system.events] + list(system.emitted)))
        self.namer = CNamer(list(system.states) + list(system.params) + list(system.inputs) +
                            layout.algebraic_names + events + generated,
                            taken=frozenset().union(*(declared_names(t) for t in TEMPLATES)))
        self.names = dict(self.namer.names)
        self.names[TIME.name] = "t"
        self.names[DT.name] = "mc_dt"
        self.writer = KernelWriter(layout, self.steps, self.names, dtype)
        self.kernels = self._kernels()
        self.launches = Launches(layout, self.kernels, len(self.steps.stages), self.ident)
        self.grad = GradientKernels(self, make_reverse_step(program, plan.trainable),
                                    make_reverse_observation(make_observation(plan), plan.trainable)) \
            if plan.trainable else None
        if self.grad and self.grad.reduces() and "mc_reduce" not in {k.name for k in self.kernels}:
            self.kernels.append(reduce_kernel(self.writer))

    def ident(self, name: str) -> str:
        return self.names[name]

    def group_of(self, name: str) -> int:
        return self.layout.group_of(name)

    def _kernels(self) -> list[Kernel]:
        layout = self.layout
        groups = range(len(layout.groups))
        elements, loops = ElementKernels(self.writer), LoopKernels(self.writer)
        kernels = [k for g in groups if (k := elements.prologue_kernel(g)) is not None]
        kernels += [k for s in range(len(self.steps.stages)) for g in groups for k in elements.stage_kernels(s, g)]
        kernels += [k for g in groups for k in elements.observe_kernels(g)]
        if not layout.has_barriers:
            kernels += [loops.kernel(g, persistent=False) for g in groups if layout.states_of(g)]
        if len(layout.groups) == 1 and layout.states_of(0) and (layout.has_barriers or layout.observe.barriers):
            kernels.append(loops.kernel(0, persistent=True))
        if any(b.kind in ("mean", "sum") for p in (layout.stage, layout.observe) for b in p.barriers.values()):
            kernels.append(reduce_kernel(self.writer))
        return kernels

    def all_kernels(self) -> list[Kernel]:
        """run()'s kernels and grad()'s."""
        return self.kernels + (self.grad.kernels if self.grad else [])

    # -- host-side Python (hoisted constants, folded coefficients, rhs on the device) -------

    def host_lines(self) -> list[str]:
        """Body of _constants(params, dt): the plan's hoisted values and every coupling's coefficient."""
        layout = self.layout
        names = {n: self.ident(n) for n in list(self.system.params) + list(layout.hoisted)}
        names[DT.name] = "dt"
        printer = NumPyPrinter(names)
        lines = [f"{self.ident(n)} = params[{n!r}]" for n, p in self.system.params.items() if p.shape != "matrix"]
        lines += [f"{self.ident(h)} = {printer.doprint(e)}" for h, e in layout.hoisted.items()]
        lines.append("hoisted = {" + ", ".join(f"{self.ident(h)!r}: {self.ident(h)}" for h in layout.hoisted) + "}")
        scales = {b.name: printer.doprint(b.scale) for b in layout.stage.barriers.values() if b.kind == "matvec"}
        scales.update({b.name: "1.0" for b in layout.observe.barriers.values() if b.kind == "matvec"})
        scales.update({c.name: printer.doprint(c.scale) for c in self.plan.couplings})  # grad(): every product
        lines.append("scales = {" + ", ".join(f"{n!r}: {text}" for n, text in scales.items()) + "}")
        return lines

    def device_lines(self, which: str) -> list[tuple[str, str]]:
        """Array code for algebraics()/rhs() on the device: the NumPy printer, spelled for CuPy."""
        printer = NumPyPrinter(self.names, module="cp")
        if which == "algebraics":
            return [(n, printer.doprint(e)) for n, e in self.system.algebraics]
        return [(n, printer.doprint(e)) for n, e in self.system.derivatives.items()]

    def quiet_spike_trains(self) -> list[tuple[str, str]]:
        """(identifier, value) of every emitted input in algebraics() and rhs(): 0, no events there
        (events happen in run()); zeros of a state's shape of its population where there is one
        (W @ spike needs an array)."""
        owner = population_of(self.system)
        out = []
        for n in self.system.emitted:
            state = next((x for x in self.system.states if owner.get(x) == owner.get(n)), None)
            out.append((self.ident(n), "0.0" if state is None or n not in owner else
                        f"cp.zeros(np.shape(y[{state!r}]), dtype=DTYPE)"))
        return out

    def uses_exprel(self) -> bool:
        exprs = [e for _, e in self.system.algebraics] + list(self.system.derivatives.values())
        return any(e.has(Exprel) for e in exprs)

    def comment_name(self) -> str:
        """The system's name as it may appear in a C comment inside a Python raw string."""
        return re.sub(r"[^\w./:\- ]", "_", str(self.system.name))

    def source(self, kernels: list[Kernel] | None = None) -> str:
        """The CUDA C source of the kernels (all of them by default)."""
        kernels = self.kernels if kernels is None else kernels
        return environment().get_template("cupy/kernels.cu.j2").render(
            m=self, kernels=kernels, dtype=self.dtype, ctype="float" if self.dtype == "float32" else "double",
            helpers=c_helpers(self.dtype, set().union(*(k.helpers for k in kernels))), system=self.system)


# --- entry points -------------------------------------------------------------------------

def module_context(system: System, plan: Plan, key: str, version: str, dtype: str) -> dict:
    """The variables of templates/cupy/module.py.j2."""
    m = CuPyModule(system, plan, dtype)
    names = {k.name for k in m.kernels}
    launches = m.launches
    grad_kernels = m.grad.kernels if m.grad else []   # (their launch table is grad()'s own)
    return {
        **common_context(system, plan.scheme, m.ident, key, version, dtype),
        "m": m,
        "g": m.grad,
        "trainable": sorted(plan.trainable),
        "cuda_source": m.source(m.all_kernels()),
        "idents": {n: m.ident(n) for n in system.outputs + list(system.inputs)},
        "groups": m.groups,
        "kernel_table": {**launches.kernel_table(), **Launches(m.layout, grad_kernels, 0, m.ident).kernel_table()},
        "barrier_table": launches.barrier_table(),
        "buffers": launches.buffers(),
        "values": launches.values(),
        "step_ops": launches.step_ops(),
        "prologue_ops": launches.prologue_ops(),
        "observe_ops": launches.observe_ops(),
        "observe_levels": {n: m.layout.observe.level[n] for n in m.layout.observe.outputs},
        "fused": {g: f"mc_fused_g{g}" for g in range(len(m.groups)) if f"mc_fused_g{g}" in names},
        "persistent": "mc_persistent_g0" if "mc_persistent_g0" in names else None,
        "state_group": {n: m.group_of(n) for n in system.states},
        "noise": [(s.name, m.ident(s.name), m.group_of(s.name)) for s in plan.noise],
        "noise_states": [s.name for s in plan.noise],
        "events": {e.name: (m.ident(e.name), m.group_of(e.name)) for e in system.events},
        "output_group": {n: m.group_of(n) for n in system.outputs},
        "input_group": {n: m.group_of(n) for n in system.inputs},
        "has_barriers": m.layout.has_barriers,
        "uses_exprel": m.uses_exprel(),
    }


def cupy_module(system: System, method="euler", dtype: str = "float64", trainable=()) -> CuPyModule:
    """The CuPy module of a system; `method` is a scheme's name or a scheme (any tableau); with
    trainable parameters, grad()'s kernels too."""
    return CuPyModule(system, make_plan(system, get_scheme(method), trainable), dtype)


def kernel_sources(system: System, method="euler", dtype: str = "float64", trainable=()) -> dict[str, str]:
    """Every kernel of a system as a complete CUDA C source (preamble, helpers, the kernel)."""
    m = cupy_module(system, method, dtype, trainable)
    return {k.name: m.source([k]) for k in m.all_kernels()}


def module_source(system: System, method="euler", dtype: str = "float64", trainable=()) -> str:
    """The CUDA C source of all kernels of a system, as the generated module embeds it."""
    m = cupy_module(system, method, dtype, trainable)
    return m.source(m.all_kernels())
