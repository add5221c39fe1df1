"""Every template file PyRates 1.2.3 ships, read by modelc; circuits that run, against PyRates.

Skipped where PyRates' templates are not installed (CI: PyRates is GPL and not a dependency).
Run it where they are, e.g. with the benchmark environment's interpreter:

    /tmp/modelc-bench-venv/bin/python -m pytest tests/test_pyrates_templates.py

or, for the first test alone, with MODELC_PATH naming the folder that holds `model_templates/`
(PyRates' top-level template package). The trajectory tests also need PyRates importable.

Conventions compared (PyRates' traps, see the project notes on its format):
  - PyRates records the state at t = 0, dt, 2 dt, ...; modelc's row k is the state after step
    k + 1, so modelc's row k is PyRates' row k + 1.
  - PyRates is run with vectorize=False: its vectorised networks read delayed couplings one step
    late (no delays here, but the unvectorised network is the plain reading of the equations).
  - Inputs are constants, so PyRates' input indexing (step counter) cannot shift them.
  - Complex models run in PyRates with float_precision="complex128": with "float64" PyRates
    silently drops every imaginary part (its kmo_mf then starts at z = 0.5, not 0.5+0.1j).
    modelc computes a model with complex variables in complex128 by itself.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from modelc import compile_model
from modelc.cli import main
from modelc.errors import ModelcError
from modelc.ir import build_system
from modelc.spec import EdgeTemplate, Library


def _pyrates_templates() -> Path | None:
    """PyRates' `model_templates` folder: the installed package, or one in a MODELC_PATH folder."""
    spec = importlib.util.find_spec("model_templates")
    folders = list(spec.submodule_search_locations or []) if spec else []
    folders += [os.path.join(p, "model_templates") for p in os.environ.get("MODELC_PATH", "").split(os.pathsep) if p]
    for folder in folders:
        if (Path(folder) / "base_templates.yaml").is_file():  # PyRates' own, not modelc's shipped models/
            return Path(folder)
    return None


TEMPLATES = _pyrates_templates()
pytestmark = pytest.mark.skipif(TEMPLATES is None, reason="PyRates' model_templates are not installed")

# What PyRates 1.2.3 itself cannot load or compile (a missing base, a bad edge path, ...): modelc
# may refuse these too. Found by running from_yaml (+ get_run_func for circuits) on every template.
PYRATES_REJECTS = {
    "CNS_2019_Tutorial.templates.EC", "CNS_2019_Tutorial.templates.JRC_nosyns", "CNS_2019_Tutorial.templates.JRC",
    "neural_mass_models.qif.qif_gap", "neural_mass_models.qif.qif_alpha_syn",
    "neural_mass_models.theta.conductance_op", "neural_mass_models.theta.conductance_pop",
    "neural_mass_models.theta.kmo_conductance", "test_resources.linear.ExampleCircuit",
    "test_resources.linear.MatrixCircuit", "test_resources.test_operator_caching_templates.TestOpCos",
    "test_resources.test_operator_caching_templates.TestEdge2",
    "test_resources.test_operator_caching_templates.TestCircuit2",
}
@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    """A library of PyRates' templates alone, under their own dotted names (model_templates....)."""
    root = tmp_path_factory.mktemp("pyrates_root")
    (root / "model_templates").symlink_to(TEMPLATES, target_is_directory=True)
    return Library([root])


def _accepted(library: Library) -> tuple[set[str], dict[str, str]]:
    """The templates modelc builds (an edge template: loads), and the error of each other one."""
    accepted, rejected = set(), {}
    for file in sorted(TEMPLATES.rglob("*.y*ml")):
        dotted = ".".join(file.relative_to(TEMPLATES).with_suffix("").parts)
        for name in library.load_file(file):
            try:
                template = library.get(f"{file}:{name}")
                if not isinstance(template, EdgeTemplate):
                    build_system(template)
                accepted.add(f"{dotted}.{name}")
            except ModelcError as error:  # anything else (a crash) fails the test
                rejected[f"{dotted}.{name}"] = error.format()
    return accepted, rejected


def test_every_template_pyrates_loads_is_accepted(library, capsys):
    accepted, rejected = _accepted(library)
    assert len(accepted) + len(rejected) == 156
    refused = set(rejected) - PYRATES_REJECTS
    assert not refused, {name: rejected[name] for name in refused}
    with capsys.disabled():
        print(f"\nmodelc accepts {len(accepted)} of {len(accepted) + len(rejected)} PyRates templates")


@pytest.mark.parametrize("file", ["base_templates.yaml", "oscillators/kuramoto.yaml", "neural_mass_models/ik.yaml",
                                  "neural_mass_models/wilsoncowan.yaml", "neural_mass_models/synaptic_plasticity.yaml",
                                  "test_resources/test_operator_caching_templates.yml"])
def test_modelc_check_takes_pyrates_files(library, monkeypatch, capsys, file):
    """The command line, with PyRates' folder on MODELC_PATH (aliases name templates of other files)."""
    monkeypatch.setenv("MODELC_PATH", str(library.search_path[0]))
    status = main(["check", str(TEMPLATES / file)])
    out, err = capsys.readouterr()
    if file.startswith("test_resources"):  # its TestOpCos names a base that is not there (PyRates fails too)
        assert status != 0 and "template 'TestOp1' is not in test_operator_caching_templates.yml" in err
    else:
        assert status == 0 and " ok (" in out, err


# (circuit, outputs, constant inputs, T, dt): each runs a feature of the format in PyRates' own files
CIRCUITS = [
    ("oscillators.kuramoto.kmo_mf", ["p/kmo_op/z"], {}, 5.0, 1e-3),  # complex: conj, input(complex)
    ("neural_mass_models.theta.kmo_theta", ["p/theta_op/z"], {"p/theta_op/I_ext": 2.0}, 5.0, 1e-3),  # absv, conj
    ("oscillators.kuramoto.kmo_2coupled", ["p1/phase_op/theta", "p2/phase_op/theta"],  # edge operator, both ends
     {"p1/phase_op/s_ext": 3.0}, 2.0, 1e-3),
    ("neural_mass_models.wilsoncowan.WC_stp", ["e/rate_op/r", "i/rate_op/r"],  # edges with states, aliases
     {"e/se_op/r_ext": 2.0}, 20.0, 1e-2),
    ("neural_mass_models.qif.qif_tsodyks", ["p/qif_op/r", "p/qif_op/v"], {"p/qif_op/I_ext": 3.0}, 10.0, 1e-3),
    ("neural_mass_models.qif.qif_sfa", ["p/qif_sfa_op/r", "p/qif_sfa_op/v", "p/qif_sfa_op/a"],  # replace: edits
     {"p/qif_sfa_op/I_ext": 3.0}, 10.0, 1e-3),
    ("neural_mass_models.jansenrit.JRC", ["pc/rpo_e_in/v", "pc/rpo_i/v", "ein/rpo_e/v"], {}, 0.2, 1e-4),
]


@pytest.mark.filterwarnings("ignore:Casting complex values to real")  # inside PyRates' complex runs
@pytest.mark.parametrize("circuit, outputs, inputs, T, dt", CIRCUITS, ids=[c[0] for c in CIRCUITS])
def test_euler_trajectories_match_pyrates(library, tmp_path, monkeypatch, circuit, outputs, inputs, T, dt):
    pyrates = pytest.importorskip("pyrates")
    monkeypatch.chdir(tmp_path)  # PyRates writes its generated code into the working directory
    steps = int(round(T / dt))
    template = pyrates.CircuitTemplate.from_yaml(f"model_templates.{circuit}")
    module = compile_model(library.get(f"model_templates.{circuit}"), method="euler")
    precision = "complex128" if module.DTYPE == np.complex128 else "float64"
    frame = template.run(simulation_time=T, step_size=dt, solver="euler", backend="numpy", vectorize=False,
                         float_precision=precision, outputs={name: name for name in outputs}, verbose=False,
                         inputs={name: np.full(steps, value) for name, value in inputs.items()} or None, clear=True)
    want = np.column_stack([frame[name].to_numpy().ravel() for name in outputs])[1:]  # PyRates' row 0: t = 0
    got = module.run(module.initial_state(1), {}, inputs, dt, want.shape[0], record=outputs)
    got = np.column_stack([got[name][:, 0] for name in outputs])
    scale = np.max(np.abs(want), axis=0)
    assert np.all(scale > 0)  # something happens in each variable
    assert np.max(np.abs(got - want) / scale) <= 1e-10


# Our own file in PyRates' format, in the forms PyRates takes (its edge rows bind inputs by
# edge/op/var and set values by op/var), for what its shipped files run only with delays: circuits
# made of circuits. Edge operators again, reading both ends, with a state, and with a value set.
OWN = """
phase:
  base: OperatorTemplate
  equations: "theta' = omega + c_in"
  variables: {theta: output(0.0), omega: 1.0, c_in: input(0.0)}
slow: {base: NodeTemplate, operators: [phase]}
fast: {base: NodeTemplate, operators: {phase: {omega: 2.5}}}
diff_sin:
  base: OperatorTemplate
  equations: "c = k*sin(a - b)"
  variables: {c: output(0.0), a: input(0.0), b: input(0.0), k: 1.0}
sin_coupling: {base: EdgeTemplate, operators: [diff_sin]}
pair:
  base: CircuitTemplate
  nodes: {p1: slow, p2: fast}
  edges:
    - [p1/phase/theta, p2/phase/c_in, sin_coupling, {weight: 0.7, sin_coupling/diff_sin/a: source,
                                                     sin_coupling/diff_sin/b: p2/phase/theta}]
    - [p2/phase/theta, p1/phase/c_in, sin_coupling, {weight: 0.3, sin_coupling/diff_sin/a: source,
                                                     sin_coupling/diff_sin/b: p1/phase/theta, diff_sin/k: 2.0}]
rate:
  base: OperatorTemplate
  equations: "r' = (-r + sigmoid(r_in + I_ext))/tau"
  variables: {r: output(0.1), tau: 2.0, r_in: input(0.0), I_ext: input(0.0)}
rate_node: {base: NodeTemplate, operators: [rate]}
depress:
  base: OperatorTemplate
  equations: ["x' = (1 - x)/tau_x - k*x*r_pre", "r_eff = r_pre*x"]
  variables: {r_eff: output(0.0), x: variable(1.0), tau_x: 5.0, k: 0.5, r_pre: input(0.0)}
depressing: {base: EdgeTemplate, operators: [depress]}
rate_pair:
  base: CircuitTemplate
  nodes: {e: rate_node, i: rate_node}
  edges:
    - [e/rate/r, i/rate/r_in, depressing, {weight: 2.0}]
    - [i/rate/r, e/rate/r_in, null, {weight: -1.5}]
    - [e/rate/r, e/rate/r_in, depressing, {weight: 1.2, depress/k: 2.0}]
plain_pair:
  base: CircuitTemplate
  nodes: {e: rate_node, i: rate_node}
  edges:
    - [e/rate/r, i/rate/r_in, null, {weight: 2.0}]
    - [i/rate/r, e/rate/r_in, null, {weight: -1.5}]
hub: {base: CircuitTemplate, nodes: {h: rate_node}}
nested:  # PyRates wants every part at one depth: a circuit of circuits has no nodes of its own
  base: CircuitTemplate
  circuits: {a: plain_pair, b: plain_pair, c: hub}
  edges:
    - [a/e/rate/r, b/e/rate/r_in, null, {weight: 0.8}]
    - [b/i/rate/r, c/h/rate/r_in, null, {weight: 3.0}]
"""
OWN_CIRCUITS = [
    ("pair", ["p1/phase/theta", "p2/phase/theta"], {}),
    ("rate_pair", ["e/rate/r", "i/rate/r"], {"e/rate/I_ext": 0.5}),
    ("nested", ["a/e/rate/r", "b/e/rate/r", "b/i/rate/r", "c/h/rate/r"], {"a/e/rate/I_ext": 0.5}),
]


@pytest.mark.parametrize("circuit, outputs, inputs", OWN_CIRCUITS, ids=[c[0] for c in OWN_CIRCUITS])
def test_our_files_in_pyrates_format_run_as_in_pyrates(tmp_path, monkeypatch, circuit, outputs, inputs):
    pyrates = pytest.importorskip("pyrates")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "own.yaml").write_text(OWN, encoding="utf-8")
    dt, steps = 0.01, 500
    frame = pyrates.CircuitTemplate.from_yaml(str(tmp_path / "own" / circuit)).run(
        simulation_time=dt * steps, step_size=dt, solver="euler", backend="numpy", vectorize=False,
        float_precision="float64", outputs={name: name for name in outputs}, verbose=False, clear=True,
        inputs={name: np.full(steps, value) for name, value in inputs.items()} or None)
    want = np.column_stack([frame[name].to_numpy().ravel() for name in outputs])[1:]
    module = compile_model(f"{tmp_path / 'own.yaml'}:{circuit}", method="euler")
    got = module.run(module.initial_state(1), {}, inputs, dt, want.shape[0], record=outputs)
    got = np.column_stack([got[name][:, 0] for name in outputs])
    assert np.ptp(want, axis=0).min() > 1e-3  # every variable moves
    assert np.max(np.abs(got - want) / np.max(np.abs(want), axis=0)) <= 1e-10
