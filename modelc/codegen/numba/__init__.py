"""The compiled CPU backend (numba): the NumPy module with each chunk's steps in one compiled
function of fused element-wise loops and BLAS couplings (kernel.py says how); grad() runs each
checkpointed segment forward and backwards in one compiled function (gradients.py)."""
from __future__ import annotations

from ...ir import System
from ..adjoint import make_reverse_observation, make_reverse_step
from ..layout import common_context
from ..plan import Plan
from ..step import make_observation, make_step_program
from .gradients import NumbaGradientModule
from .kernel import NumbaModule

IMPORTS_NOTE = "This module imports NumPy and numba (its steps are compiled by numba on the first run)."


def module_context(system: System, plan: Plan, key: str, version: str, dtype: str) -> dict:
    """The variables of templates/numpy/module.py.j2 with the numba run (and grad) templates."""
    program = make_step_program(plan)
    m = NumbaModule(program)
    g = NumbaGradientModule(make_reverse_step(program, plan.trainable),
                            make_reverse_observation(make_observation(plan), plan.trainable)) if plan.trainable else None
    return {**common_context(system, plan.scheme, m.ident, key, version, dtype), "m": m, "single": None,
            "run_params": m.run_params(), "run_states": m.states_context(), "run_inputs": m.inputs_context(),
            "g": g, "trainable": sorted(plan.trainable), "run_template": "numba/run.py.j2",
            "grad_template": "numba/grad.py.j2", "imports_note": IMPORTS_NOTE}
