"""The CuPy backend: a Plan and its step program -> a generated module whose work runs in CUDA kernels.

The Plan (plan.py) says what is constant (hoisted), what is a matrix coupling (and its folded
coefficient c in c * W @ x); the step program (step.py) says what one step computes: each
stage's rates, the values the next stage starts from, the update, the commit and the records.
This package only decides how that work is laid out on a GPU and prints it in C:

    program.py   element-wise definitions between barriers (couplings, reductions), levels, groups
    steps.py     the step program's statements arranged stage by stage
    kernel.py    a kernel's record of what it uses, binding values, the statements in C
    kernels.py   the graph/stream strategies' kernels: per stage, level and group; observation
    loops.py     the fused and persistent strategies' kernels: every step of a chunk in one launch
    launches.py  what the Python side launches in order, and the tables it reads
    grad_ops.py  grad(): the step program and adjoint.py's reverse step as ops over keys, where keys live
    gradients.py grad(): those ops printed as kernels (graph and block strategies), the host's tables
    module.py    identifiers, every kernel, host-side code, the templates' variables

Strategies (chosen by the generated module from the sizes at run time, see its `strategy_for`):
"fused" (no barriers: one kernel runs every stage of every step of a chunk in registers),
"persistent" (one group of <= 1024 units with small weights: one thread block per batch member
runs many steps per launch, couplings as shared-memory mat-vecs and block reductions), "graph"
(per-stage kernels + cuBLAS, a chunk of steps captured once in a CUDA graph and replayed) and
"stream" (the same launches issued one by one).

Events and noise are statements like the others (docs/events.md, README's noise section):
every kernel that reads a spike train checks the events first, on the states the step starts
from (a few comparisons, cheaper than a buffer between kernels); the last kernel of a step (the
loop body in fused/persistent) counts the spikes of the record row (mc_cnt_*, carried across
chunks) and applies the resets to the new values before the commit. The noise's standard normals
come from one cupy.random Generator (cuRAND XORWOW) per batch member, a chunk's block
(B, steps, noisy units) at a time; each stage's kernel reads its dW. Delays (Remember, Recall)
and, in grad(), events and noise are refused (MC301).

Kernel bodies are printed by c_printer.CPrinter; they are plain C as well as CUDA C (the
preamble's MODELC_* macros are the only CUDA-specific part), so tests can compile them with the
host C compiler. Generating needs neither CuPy nor a GPU.
"""
from .kernel import Kernel
from .module import CuPyModule, cupy_module, kernel_sources, module_context, module_source
from .program import Barrier, Program

__all__ = ["module_context", "kernel_sources", "module_source", "cupy_module", "CuPyModule", "Kernel",
           "Barrier", "Program"]
