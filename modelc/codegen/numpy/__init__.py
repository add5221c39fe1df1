"""The NumPy backend: array code (arrays.py) and, for a single unit, Python floats (floats.py)."""
from __future__ import annotations

from ...ir import System
from ..layout import common_context
from ..plan import Plan
from ..adjoint import make_reverse_observation, make_reverse_step
from ..step import make_observation, make_step_program
from .arrays import NumPyModule, applies_to_floats
from .floats import FloatModule
from .gradients import GradientModule


def module_context(system: System, plan: Plan, key: str, version: str, dtype: str) -> dict:
    """The variables of templates/numpy/module.py.j2 (grad() only when something is trainable)."""
    program = make_step_program(plan)
    m = NumPyModule(program)
    # Python floats are doubles: a float32 module runs even a single unit in NumPy, in float32.
    single = FloatModule(program) if applies_to_floats(system) and dtype == "float64" else None
    return {**common_context(system, plan.scheme, m.ident, key, version, dtype), "m": m, "single": single,
            "run_params": m.run_params(), "run_states": m.states_context(), "run_inputs": m.inputs_context(),
            "single_states": single.states_context() if single else [],
            "single_inputs": single.inputs_context() if single else [],
            "g": GradientModule(make_reverse_step(program, plan.trainable),
                                make_reverse_observation(make_observation(plan), plan.trainable))
            if plan.trainable else None,
            "trainable": sorted(plan.trainable)}
