"""PyRates' delay circuits against PyRates 1.2.3 itself (Euler, numpy backend, float64,
vectorize=False). Skipped where PyRates or its model_templates are not importable (PyRates is GPL
and no dependency): run it with an interpreter that has both, e.g.

    /tmp/modelc-bench-venv/bin/python -m pytest tests/test_pyrates_delays.py

Conventions (tests/test_delays.py checks modelc's rule itself):
  - modelc follows PyRates wherever its fixed-step runs are consistent: an edge's `delay` reads
    zero before t0 (PyRates' ring buffers start at 0: nothing was sent before the run began), an
    edge's `spread` is PyRates' gamma chain (order round((delay/spread)^2), rate order/delay,
    states starting at 0), the delay of an edge with operators is that of their output (PyRates
    puts the buffer after the edge's operators), and past(x, tau) / x(t - tau) reads the state's
    initial value before t0 (PyRates' DDEHistory).
  - Where PyRates' fixed-step buffers are wrong modelc does not follow them, so the circuits here
    avoid those cases: PyRates rounds a delay to whole steps and drops a delay of one step or
    less, and its Heun rolls the buffer twice a step (half the delay). modelc interpolates between
    step values and reads the history at each stage's own time. The dt here divides every delay.
  - PyRates records the state at t = 0, dt, ...: modelc's row k is PyRates' row k + 1.
  - test_resources.test_backend.net11 (two delayed edges from one source into one target) fails
    inside PyRates itself (IndexError in its generated code), so it is not compared.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from modelc import compile_model
from modelc.spec import Library

pyrates = pytest.importorskip("pyrates")
_FOUND = importlib.util.find_spec("model_templates")
if _FOUND is None or not (Path(list(_FOUND.submodule_search_locations)[0]) / "base_templates.yaml").is_file():
    pytest.skip("PyRates' model_templates are not installed", allow_module_level=True)
TEMPLATES = Path(list(_FOUND.submodule_search_locations)[0])

# (circuit, outputs, constant inputs, T, dt)
CIRCUITS = [
    ("neural_mass_models.qif.qif_sd", ["p/qif_op/r", "p/qif_op/v"], {"p/qif_op/I_ext": 3.0}, 10.0, 1e-3),  # spread
    ("neural_mass_models.jansenrit.JRC_2delaycoupled", ["jrc1/pc/rpo_e_in/v", "jrc2/pc/rpo_e_in/v"], {}, 0.2, 1e-4),
    ("test_resources.test_backend.net10", ["pop0/op8/a", "pop1/op8/a"], {}, 5.0, 1e-2),  # delays of 50, 100 steps
    ("test_resources.test_backend.net12", ["pop0/op7/a", "pop1/op7/a"], {"pop0/op7/inp": 1.0}, 5.0, 1e-2),
    ("test_resources.test_backend.net13", ["p1/op9/a", "p2/op10/a"], {"p1/op9/I_ext": 0.5}, 5.0, 1e-2),  # spread
    ("test_resources.test_backend.net14", ["c1/p1/op9/a", "c2/p2/op10/a"], {"c1/p1/op9/I_ext": 0.5}, 5.0, 1e-2),
    ("test_resources.test_backend.net16", ["p1/op_dde/x"], {}, 3.0, 1e-2),  # x' = -x(t - d)
]


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    root = tmp_path_factory.mktemp("pyrates_root")
    (root / "model_templates").symlink_to(TEMPLATES, target_is_directory=True)
    return Library([root])


@pytest.mark.parametrize("circuit, outputs, inputs, T, dt", CIRCUITS, ids=[c[0] for c in CIRCUITS])
def test_euler_trajectories_of_delay_circuits_match_pyrates(library, tmp_path, monkeypatch, circuit, outputs,
                                                            inputs, T, dt):
    monkeypatch.chdir(tmp_path)  # PyRates writes its generated code into the working directory
    steps = int(round(T / dt))
    pyrates.clear_frontend_caches()  # templates another test loaded stay in PyRates' cache, edited by its run
    frame = pyrates.CircuitTemplate.from_yaml(f"model_templates.{circuit}").run(
        simulation_time=T, step_size=dt, solver="euler", backend="numpy", vectorize=False, float_precision="float64",
        outputs={name: name for name in outputs}, verbose=False, clear=True,
        inputs={name: np.full(steps, value) for name, value in inputs.items()} or None)
    want = np.column_stack([frame[name].to_numpy().ravel() for name in outputs])[1:]
    module = compile_model(library.get(f"model_templates.{circuit}"), method="euler")
    got = module.run(module.initial_state(1), {}, inputs, dt, want.shape[0], record=outputs)
    got = np.column_stack([got[name][:, 0] for name in outputs])
    assert np.ptp(want, axis=0).min() > 1e-2  # every variable moves
    assert np.max(np.abs(got - want) / np.max(np.abs(want), axis=0)) <= 1e-10
