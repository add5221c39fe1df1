"""The compiled CPU backend (numba): the NumPy module with each chunk's steps in one compiled
function of fused element-wise loops and BLAS couplings (kernel.py says how)."""
from __future__ import annotations

from ...errors import UnsupportedFeatureError
from ...ir import System
from ..layout import common_context
from ..plan import Plan
from ..step import make_step_program
from .kernel import NumbaModule

IMPORTS_NOTE = "This module imports NumPy and numba (its steps are compiled by numba on the first run)."


def module_context(system: System, plan: Plan, key: str, version: str, dtype: str) -> dict:
    """The variables of templates/numpy/module.py.j2 with the numba run template."""
    if plan.trainable:
        raise UnsupportedFeatureError("gradients (trainable parameters) on the compiled backend 'numba'", None,
                                      "use backend='numpy' (or 'cupy') for grad() and fitting")
    m = NumbaModule(make_step_program(plan))
    return {**common_context(system, plan.scheme, m.ident, key, version, dtype), "m": m, "single": None,
            "run_params": m.run_params(), "run_states": m.states_context(), "run_inputs": m.inputs_context(),
            "g": None, "trainable": [], "run_template": "numba/run.py.j2", "imports_note": IMPORTS_NOTE}
