"""The conformance suite: the same models through every backend, against independent references.

Backends:
* NumPy, array path: populations of n > 1 units and/or a leading batch axis;
* NumPy, Python-float path: every population one unit, no batch axis (README "The generated
  module"); the same arguments with a batch axis of one must give the same numbers through
  the array path. Which path ran is checked from outside where the module shows it (a spy on
  its float loop); the comparison with the reference is made either way;
* CuPy, through the C-compiler stand-in tests/fake_cupy.py (kernels built with gcc, run on
  the CPU), every strategy that can run the arguments.

Models: every shipped template (`modelc list`), a seed population with recurrent weights,
multi-population networks (Network: several nodes, fan-in, loops, per-unit parameters),
batched parameter sweeps (a leading batch axis on parameters; Network.sweep), every scheme in
modelc.codegen.options.METHODS.

References (tests/references.py): the IR's equations (System.derivatives/algebraics) through
sympy.lambdify with NumPy -- nothing of the code generator's plan, printers or templates --
stepped by a hand-written loop of the same explicit Runge-Kutta scheme from its textbook
formula. Generated and reference runs differ only in the order of floating-point operations,
so they agree to RTOL = 1e-10 of each variable's range over a few hundred steps (measured:
1e-16 .. 4e-14). The records of algebraic variables and sampling_steps are compared too. For a
few models, SciPy's solve_ivp (DOP853, rtol=1e-10) against RK4 with a small dt: agreement to
RK4's accuracy, and every scheme's observed order of convergence.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from modelc import Network, compile_model
from modelc.codegen.options import METHODS, get_scheme
from modelc.errors import ModelcError
from modelc.ir import Connection, build_network, build_system
from modelc.spec import OperatorTemplate, load
from generated import fake_cupy_installed
from references import (TEXTBOOK_ORDER, DelayedReference, Reference, assert_close, relative_error, rk4_step,
                        step_function, tableau_step)

RTOL = 1e-10
SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
SIGMOID = "neuron_model_templates.rate_neurons.leaky_integrator.sigmoid"
QIF = "model_templates.neural_mass_models.qif.qif"
QIF_SFA = "model_templates.neural_mass_models.qif.qif_sfa"
KURAMOTO = "model_templates.oscillators.kuramoto.kuramoto"
JRC = "model_templates.neural_mass_models.jansenrit.JRC"
HH = "neuron_model_templates.conductance.hodgkin_huxley.hh"
WC = "model_templates.neural_mass_models.wilsoncowan.WC"
SEED_COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext", output_var="li_op/v")


def shipped_templates() -> list[str]:
    """The dotted names `modelc list` prints (the CLI is the documented list)."""
    from modelc.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list"]) == 0
    names = [line.split()[0] for line in out.getvalue().splitlines() if line.strip()]
    assert SEED in names and JRC in names, names
    return names


TEMPLATES = shipped_templates()
_REFERENCES: dict = {}


def reference_of(path: str) -> Reference:
    if path not in _REFERENCES:
        _REFERENCES[path] = Reference(build_system(load(path)))
    return _REFERENCES[path]


def compiled(path: str, method: str, **kwargs):
    """The generated module; an operator that cannot be compiled on its own is skipped (and says why)."""
    try:
        return compile_model(path, method=method, **kwargs)
    except ModelcError as exc:
        if isinstance(load(path), OperatorTemplate):
            pytest.skip(f"operator {path} does not compile on its own: {str(exc).splitlines()[0]}")
        raise


def dt_for(path: str) -> float:
    """A step a tenth or less of each model's fastest time scale (JR: 10 ms synapses, in seconds)."""
    return 5e-4 if "jansenrit" in path else 1e-2


def random_arguments(mod, shape, steps, seed=0):
    """Initial states near the defaults, parameters within 10 % of them, noisy inputs for every step."""
    rng = np.random.default_rng(seed)
    y0 = {k: v + 0.05 * max(1.0, abs(v)) * rng.standard_normal(shape) for k, v in mod.STATES.items()}
    params = {k: v * (1 + 0.1 * rng.uniform(-1, 1)) for k, v in mod.PARAMS.items() if v is not None}
    inputs = {k: v + 0.1 * max(1.0, abs(v)) * rng.standard_normal((steps,) + shape) for k, v in mod.INPUTS.items()}
    return y0, params, inputs


def compare_runs(got: dict, want: dict, names, what: str, rtol=RTOL):
    for name in names:
        assert name in got, f"{what}: {name} was not recorded"
        assert_close(got[name], want[name], rtol, f"{what} {name}")
    for name, value in want["final"].items():
        assert_close(got["final"][name], value, rtol, f"{what} final {name}")


@contextlib.contextmanager
def float_path_watch(mod):
    """A list that gets, for each run that entered the module's Python-float loop, whether that
    loop finished the run (False: it handed over to the array loop part-way); None when the
    module does not show its float loop (then only the numbers are checked).

    An inside look at the generated module: `_run_single_unit` returned the finished records or
    None (give up) at first, and (first step not done, states, on_nan) since issue 11."""
    original = getattr(mod, "_run_single_unit", None)
    if original is None:
        yield None
        return
    calls: list[bool] = []

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        if isinstance(result, tuple):
            steps = kwargs["steps"] if "steps" in kwargs else args[4]
            calls.append(result[0] == steps)
        else:
            calls.append(result is not None)
        return result
    mod._run_single_unit = spy
    try:
        yield calls
    finally:
        mod._run_single_unit = original


# --- the schemes themselves ----------------------------------------------------------------

def test_every_scheme_has_a_reference_and_the_tableaux_are_the_textbook_methods():
    """modelc's tableaux, stepped by the generic loop, are the textbook formulas (a nonlinear f)."""
    assert {"euler", "heun", "midpoint", "rk4"} <= set(METHODS)

    def f(t, y):
        return {"a": np.sin(3 * t) - y["a"] * y["b"], "b": np.tanh(y["a"]) + t * y["b"] ** 2}
    y = {"a": np.array([0.3, -1.2]), "b": np.array([0.7, 0.1])}
    for method in METHODS:
        scheme = get_scheme(method)
        got = tableau_step(scheme.a, scheme.b, scheme.c)(f, 0.4, y, 0.1)
        want = step_function(method)(f, 0.4, y, 0.1)
        for name in y:
            assert_close(got[name], want[name], 1e-15, f"{method} tableau {name}")
        if method in TEXTBOOK_ORDER:
            assert scheme.order == TEXTBOOK_ORDER[method], method


# --- every shipped template: NumPy array path and float path ------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", TEMPLATES)
def test_template_array_path(path, method):
    """n = 3 units (and, for every other scheme, a batch axis of 2): every output and the final
    state against the reference, sampled every 2nd step over 150 steps."""
    mod = compiled(path, method)
    shape = (3,) if METHODS.index(method) % 2 == 0 else (2, 3)
    steps, dt = 151, dt_for(path)
    y0, params, inputs = random_arguments(mod, shape, steps, seed=METHODS.index(method))
    with float_path_watch(mod) as calls:
        got = mod.run(y0, params, inputs, dt, steps, record=mod.OUTPUTS, sampling_steps=2)
    if calls is not None:
        assert calls == [], "a run of 3 units went into the single-unit float loop"
    ref = reference_of(path)
    want = ref.integrate(method, y0, params, inputs, dt, steps, {label: shape for label in ref.system.populations},
                         record=mod.OUTPUTS, sampling_steps=2)
    assert all(got[name].shape == (75,) + shape for name in mod.OUTPUTS)
    compare_runs(got, want, mod.OUTPUTS, f"{path} [{method}, array {shape}]")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", TEMPLATES)
def test_template_float_path(path, method):
    """One unit, no batch axis (the Python-float loop), then the same arguments with a batch axis
    of one (the array loop): both against the same reference, sampled every 3rd step."""
    mod = compiled(path, method)
    steps, dt = 150, dt_for(path)
    y0, params, inputs = random_arguments(mod, (1,), steps, seed=10 + METHODS.index(method))
    ref = reference_of(path)
    want = ref.integrate(method, y0, params, inputs, dt, steps, {label: (1,) for label in ref.system.populations},
                         record=mod.OUTPUTS, sampling_steps=3)
    with float_path_watch(mod) as calls:
        got = mod.run(y0, params, inputs, dt, steps, record=mod.OUTPUTS, sampling_steps=3)
    if calls is not None and mod.STATES:
        assert calls == [True], f"one unit without a batch axis did not finish in the float loop: {calls}"
    compare_runs(got, want, mod.OUTPUTS, f"{path} [{method}, float path]")

    batched_y0 = {k: v[None] for k, v in y0.items()}
    batched_inputs = {k: v[:, None] for k, v in inputs.items()}
    with float_path_watch(mod) as calls:
        got = mod.run(batched_y0, params, batched_inputs, dt, steps, record=mod.OUTPUTS, sampling_steps=3)
    if calls is not None:
        assert calls == [], "a batch axis must take the array loop"
    unbatched = {name: got[name][:, 0] for name in mod.OUTPUTS}
    unbatched["final"] = {name: value[0] for name, value in got["final"].items()}
    compare_runs(unbatched, want, mod.OUTPUTS, f"{path} [{method}, batch of one]")


def test_a_long_run_across_chunks_with_inputs_of_every_step():
    """1500 steps (more than one chunk of 1024) sampled every 7th step, float and array path."""
    method, steps, dt = "rk4", 1500, 2e-3
    mod = compiled(QIF_SFA, method)
    ref = reference_of(QIF_SFA)
    for shape in ((1,), (2,)):
        y0, params, inputs = random_arguments(mod, shape, steps, seed=7)
        got = mod.run(y0, params, inputs, dt, steps, record=mod.OUTPUTS, sampling_steps=7)
        want = ref.integrate(method, y0, params, inputs, dt, steps, {"": shape}, record=mod.OUTPUTS, sampling_steps=7)
        assert got[mod.OUTPUTS[0]].shape == (214,) + shape
        compare_runs(got, want, mod.OUTPUTS, f"qif_sfa long run {shape}")


# --- batched parameter sweeps (a leading batch axis on parameters) -------------------------------

@pytest.mark.parametrize("path", TEMPLATES)
def test_template_parameter_sweep(path):
    """Every parameter a vector with a batch axis: values (3, n) -- one per batch member and unit --
    for the first parameter, (3, 1) for the others; the scheme rotates through METHODS."""
    method = METHODS[TEMPLATES.index(path) % len(METHODS)]
    base = compiled(path, method)
    names = [k for k, v in base.PARAMS.items() if v is not None]
    if not names:
        pytest.skip(f"{path} has no parameters to sweep")
    mod = compiled(path, method, vector_params=names)
    B, n, steps, dt = 3, 2, 100, dt_for(path)
    y0, _, inputs = random_arguments(mod, (B, n), steps, seed=3)
    rng = np.random.default_rng(4)
    params = {name: mod.PARAMS[name] * (1 + 0.1 * rng.uniform(-1, 1, (B, n) if i == 0 else (B, 1)))
              for i, name in enumerate(names)}
    got = mod.run(y0, params, inputs, dt, steps, record=mod.OUTPUTS, sampling_steps=1)
    ref = reference_of(path)
    want = ref.integrate(method, y0, params, inputs, dt, steps, {label: (B, n) for label in ref.system.populations},
                         record=mod.OUTPUTS)
    compare_runs(got, want, mod.OUTPUTS, f"{path} [{method}, sweep of {len(names)} parameters]")


# --- a population with recurrent weights, every scheme -----------------------------------------

def _seed_arguments(n=5, batch=(2,), steps=200, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n)) / np.sqrt(n)
    y0 = {"li_op/v": rng.standard_normal(batch + (n,))}
    params = {"weights": W, "li_op/tau": 2.0, "li_op/k": 1.3, "li_op/eta": 0.1}
    inputs = {"li_op/I_ext": rng.standard_normal((steps,) + batch + (n,))}
    return y0, params, inputs


def seed_reference():
    if "seed+W" not in _REFERENCES:
        _REFERENCES["seed+W"] = Reference(build_system(load(SEED), [Connection("tanh_op/r", "li_op/r_in", "weights")]))
    return _REFERENCES["seed+W"]


@pytest.mark.parametrize("batch", [(), (2,)], ids=["unbatched", "batch2"])
@pytest.mark.parametrize("method", METHODS)
def test_seed_with_weights_every_scheme(method, batch):
    """The coupled seed population (r_in = W @ tanh(v)) in every scheme, with and without a batch
    axis; the other schemes' references are far from it (the comparison tells schemes apart)."""
    steps, dt = 200, 0.05
    y0, params, inputs = _seed_arguments(batch=batch, steps=steps)
    mod = compiled(SEED, method, coupling=SEED_COUPLING)
    record = ["li_op/v", "tanh_op/r", "li_op/r_in"]
    got = mod.run(y0, params, inputs, dt, steps, record=record, sampling_steps=4)
    ref = seed_reference()
    shapes = {"": batch + (5,)}
    want = ref.integrate(method, y0, params, inputs, dt, steps, shapes, record=record, sampling_steps=4)
    compare_runs(got, want, record, f"seed+W [{method}, batch {batch}]")
    for other in METHODS:
        if other != method:
            other_run = ref.integrate(other, y0, params, inputs, dt, steps, shapes, record=["li_op/v"],
                                      sampling_steps=4)
            assert relative_error(got["li_op/v"], other_run["li_op/v"]) > 1e3 * RTOL, (method, other)


# --- explicit time, stage times and a run that starts at t0 > 0 ------------------------------------
# No shipped template reads t, so a model of our own does: stage i of a step must see t_n + c_i dt.

FORCED = """\
forced_op:
  base: OperatorTemplate
  description: "A driven damped oscillator with explicit time, population reductions and piecewise terms."
  equations:
    - "x' = y"
    - "y' = -w^2*x - c*y + a*sin(w_f*t) + u + g*(mean(x) - x) + where(x > 0, 0.1, -0.1)*heaviside(y)"
    - "z' = exprel(-z) - z + 0.1*cos(t)*sum(y) + max(x, y, 0.2) - min(x, 0)"
    - "e = 0.5*(y^2 + w^2*x^2) + 0.01*t"
  variables:
    x: output(0.5)
    y: variable(0.0)
    z: variable(0.1)
    e: variable(0.0)
    w: 2.0
    c: 0.1
    a: 0.5
    w_f: 3.0
    g: 0.3
    u: input(0.0)
forced:
  base: NodeTemplate
  description: "The driven oscillator as a node."
  operators: [forced_op]
"""


@pytest.fixture(scope="module")
def forced(tmp_path_factory):
    path = tmp_path_factory.mktemp("forced") / "forced.yaml"
    path.write_text(FORCED)
    return f"{path}:forced"


@pytest.mark.parametrize("shape", [(1,), (2, 3)], ids=["float", "array"])
@pytest.mark.parametrize("method", METHODS)
def test_time_dependent_model_from_t0(forced, method, shape):
    """sin(w_f t) and cos(t) in the derivatives, t in an algebraic, a run from t0 = 0.7: the stage
    times and the record times are the textbook ones."""
    mod = compiled(forced, method)
    steps, dt, t0 = 120, 0.05, 0.7
    y0, params, inputs = random_arguments(mod, shape, steps, seed=METHODS.index(method))
    got = mod.run(y0, params, inputs, dt, steps, record=mod.OUTPUTS, sampling_steps=2, t0=t0)
    ref = reference_of(forced)
    want = ref.integrate(method, y0, params, inputs, dt, steps, {"": shape}, record=mod.OUTPUTS, sampling_steps=2,
                         t0=t0)
    compare_runs(got, want, mod.OUTPUTS, f"forced [{method}, {shape}]")
    shifted = ref.integrate(method, y0, params, inputs, dt, steps, {"": shape}, record=["forced_op/x"], t0=0.0)
    assert relative_error(got["final"]["forced_op/x"], shifted["final"]["forced_op/x"]) > 1e-6  # t0 matters


# --- networks of several populations ----------------------------------------------------------

class MultiNetwork:
    """E (seed, 4 units, recurrent W_E, external input), I (sigmoid, 3, per-unit tau), Q (QIF mean
    field, 2), K (Kuramoto, 3, per-unit omega): E -> I, E -> Q, Q -> K, and the loops I -> E,
    K -> E into E's r_in, summed with E's recurrent coupling (fan-in of three)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.n = {"E": 4, "I": 3, "Q": 2, "K": 3}
        n = self.n
        self.W = {"W_E": rng.standard_normal((4, 4)) / 2, "W_IE": rng.standard_normal((3, 4)),
                  "W_QE": 0.5 * rng.standard_normal((2, 4)), "W_KQ": rng.standard_normal((3, 2)),
                  "W_EI": rng.standard_normal((4, 3)), "W_EK": 0.3 * rng.standard_normal((4, 3))}
        self.tau_I = rng.uniform(2, 6, n["I"])
        self.omega = rng.standard_normal(n["K"])
        self.v_E = rng.standard_normal(n["E"])
        self.theta = rng.uniform(-np.pi, np.pi, n["K"])
        # (source label, source var, target label, target var, matrix name, feedback)
        self.edges = [("E", "li_op/v", "I", "li_op/I_ext", "W_IE", False),
                      ("E", "tanh_op/r", "Q", "qif_op/I_ext", "W_QE", False),
                      ("Q", "qif_op/r", "K", "kuramoto_op/I_ext", "W_KQ", False),
                      ("I", "sigmoid_op/r", "E", "li_op/r_in", "W_EI", True),
                      ("K", "kuramoto_op/theta", "E", "li_op/r_in", "W_EK", True)]

    def network(self, method, device="cpu", backend=None):
        net = Network(dt=0.01, device=device, backend=backend)
        net.add_diffeq_node("E", SEED, weights=self.W["W_E"], source_var="tanh_op/r", target_var="li_op/r_in",
                            input_var="li_op/I_ext", output_var="tanh_op/r", method=method,
                            node_vars={"li_op/v": self.v_E, "li_op/tau": 3.0})
        net.add_diffeq_node("I", SIGMOID, N=3, input_var="li_op/I_ext", output_var="sigmoid_op/r", method=method,
                            node_vars={"li_op/tau": self.tau_I, "sigmoid_op/s": 2.0})
        net.add_diffeq_node("Q", QIF, N=2, input_var="qif_op/I_ext", output_var="qif_op/r", method=method)
        net.add_diffeq_node("K", KURAMOTO, N=3, input_var="kuramoto_op/I_ext", output_var="kuramoto_op/theta",
                            method=method, node_vars={"omega": self.omega, "kuramoto_op/theta": self.theta})
        for source, s_var, target, t_var, name, feedback in self.edges:
            net.add_edge(source, target, self.W[name], source_var=s_var, target_var=t_var, feedback=feedback)
        return net

    RECORD = [("E", "li_op/v"), ("E", "li_op/r_in"), ("I", "li_op/v"), ("I", "sigmoid_op/r"), ("Q", "qif_op/r"),
              ("Q", "qif_op/v"), ("K", "kuramoto_op/theta"), ("K", "kuramoto_op/I_ext")]

    def reference(self):
        populations = {"E": load(SEED), "I": load(SIGMOID), "Q": load(QIF), "K": load(KURAMOTO)}
        connections = [Connection("E/tanh_op/r", "E/li_op/r_in", "W_E")]
        connections += [Connection(f"{s}/{sv}", f"{t}/{tv}", name) for s, sv, t, tv, name, _ in self.edges]
        return Reference(build_network(populations, connections))

    def arguments(self):
        y0 = {"E/li_op/v": self.v_E, "K/kuramoto_op/theta": self.theta}
        params = {**self.W, "E/li_op/tau": 3.0, "I/li_op/tau": self.tau_I, "I/sigmoid_op/s": 2.0,
                  "K/kuramoto_op/omega": self.omega}
        return y0, params, {label: (n,) for label, n in self.n.items()}


@pytest.mark.parametrize("method", METHODS)
def test_network_of_four_populations(method):
    """Network.run against the reference, twice in a row (the second run continues from the first)."""
    spec = MultiNetwork()
    net = spec.network(method)
    ref = spec.reference()
    y0, params, shapes = spec.arguments()
    steps = 120
    u = np.random.default_rng(1).standard_normal((2 * steps, 4))
    names = [f"{label}/{var}" for label, var in MultiNetwork.RECORD]
    for part in range(2):
        rows = u[part * steps:(part + 1) * steps]
        obs = net.run(rows, record_vars=MultiNetwork.RECORD, sampling_steps=2, output="E")
        want = ref.integrate(method, y0, params, {"E/li_op/I_ext": rows}, 0.01, steps, shapes, record=names,
                             sampling_steps=2, t0=part * steps * 0.01)
        assert obs["out"].shape == (steps // 2, 4)
        assert_close(obs["out"], np.tanh(want["E/li_op/v"]), RTOL, f"network [{method}] part {part} out")
        for (label, var), name in zip(MultiNetwork.RECORD, names):
            assert_close(obs[(label, var)], want[name], RTOL, f"network [{method}] part {part} {name}")
        assert np.allclose(obs.times, (part * steps + 2 * np.arange(1, steps // 2 + 1)) * 0.01, rtol=0, atol=1e-12)
        y0 = want["final"]


def test_network_sweep_is_one_batch_against_the_reference():
    """Network.sweep over a parameter of E and the initial phase of K (grid: 3 x 2 = 6 sets)."""
    spec = MultiNetwork(seed=2)
    net = spec.network("heun")
    ref = spec.reference()
    y0, params, shapes = spec.arguments()
    steps, taus, phases = 80, [1.5, 3.0, 6.0], [-0.5, 0.7]
    u = np.random.default_rng(5).standard_normal((steps, 4))
    obs = net.sweep({"E/li_op/tau": taus, "K/kuramoto_op/theta": phases}, inputs=u,
                    record_vars=MultiNetwork.RECORD, output="E")
    sets = [(tau, phase) for tau in taus for phase in phases]
    B = len(sets)
    params = {**params, "E/li_op/tau": np.array([[tau] for tau, _ in sets])}
    y0 = {**y0, "K/kuramoto_op/theta": np.array([[phase] * 3 for _, phase in sets])}
    names = [f"{label}/{var}" for label, var in MultiNetwork.RECORD]
    want = ref.integrate("heun", y0, params, {"E/li_op/I_ext": u}, 0.01, steps,
                         {label: (B, n) for label, (n,) in shapes.items()}, record=names)
    assert obs["out"].shape == (steps, B, 4)
    assert_close(obs["out"], np.tanh(want["E/li_op/v"]), RTOL, "sweep out")
    for (label, var), name in zip(MultiNetwork.RECORD, names):
        assert_close(obs[(label, var)], want[name], RTOL, f"sweep {name}")


def test_network_of_single_units_takes_the_float_path():
    """Single-unit populations coupled by 1 x 1 matrices (QIF -> QIF -> Wilson-Cowan, and a loop):
    README: the float path applies when every population is one unit with no batch axis."""
    populations = {"A": load(QIF), "B": load(QIF), "C": load("model_templates.neural_mass_models.wilsoncowan.e")}
    edges = [("A", "qif_op/r", "B", "qif_op/r_in", 1.5), ("B", "qif_op/r", "C", "wc_e_op/I_ext", 2.0),
             ("C", "wc_e_op/r", "A", "qif_op/r_in", -0.8)]
    for method in ("euler", "rk4"):
        net = Network(dt=1e-3)
        net.add_diffeq_node("A", QIF, N=1, input_var="qif_op/I_ext", output_var="qif_op/r", method=method)
        net.add_diffeq_node("B", QIF, N=1, output_var="qif_op/r", method=method, node_vars={"eta": -3.0})
        net.add_diffeq_node("C", "model_templates.neural_mass_models.wilsoncowan.e", N=1, output_var="wc_e_op/r",
                            method=method)
        for s, sv, t, tv, w in edges:
            net.add_edge(s, t, np.array([[w]]), source_var=sv, target_var=tv, feedback=(s == "C"))
        ref = Reference(build_network(populations, [Connection(f"{s}/{sv}", f"{t}/{tv}", f"W_{s}{t}")
                                                    for s, sv, t, tv, _ in edges]))
        params = {f"W_{s}{t}": np.array([[w]]) for s, _, t, _, w in edges}
        params["B/qif_op/eta"] = -3.0
        steps = 300
        u = 2.0 + np.sin(np.linspace(0, 6, steps))[:, None]
        mod = net.compile()
        record = [("A", "qif_op/v"), ("B", "qif_op/r"), ("C", "wc_e_op/r"), ("A", "qif_op/r_in")]
        with float_path_watch(mod) as calls:
            obs = net.run(u, record_vars=record, output="C")
        if calls is not None:
            assert calls == [True], f"[{method}] single units coupled by 1 x 1 matrices: {calls}"
        names = [f"{label}/{var}" for label, var in record]
        want = ref.integrate(method, {}, params, {"A/qif_op/I_ext": u}, 1e-3, steps, {k: (1,) for k in populations},
                             record=names)
        for key, name in zip(record, names):
            assert_close(obs[key], want[name], RTOL, f"single units [{method}] {name}")
        assert_close(obs["out"], want["C/wc_e_op/r"], RTOL, f"single units [{method}] out")


# --- solve_ivp at tight tolerance ------------------------------------------------------------

def solve_reference(ref: Reference, y0: dict, params: dict, inputs: dict, shapes: dict, t_end: float, times):
    """solve_ivp (DOP853, rtol=1e-10, atol=1e-13) of the lambdified IR with constant inputs."""
    default_params, default_inputs = ref.defaults()
    env = {**ref.values({**default_params, **params}, shapes), **ref.values({**default_inputs, **inputs}, shapes)}
    y0 = ref.values({name: y0.get(name, s.init) for name, s in ref.system.states.items()}, shapes)
    names = list(y0)
    layout = [(name, np.shape(y0[name])) for name in names]
    flat0 = np.concatenate([np.ravel(y0[name]) for name in names])

    def unpack(flat):
        out, at = {}, 0
        for name, shape in layout:
            size = int(np.prod(shape))
            out[name] = flat[at:at + size].reshape(shape)
            at += size
        return out

    def rhs(t, flat):
        derivs = ref.evaluate(t, unpack(flat), env)[0]
        return np.concatenate([np.ravel(np.broadcast_to(derivs[name], shape)) for name, shape in layout])

    sol = solve_ivp(rhs, (0.0, t_end), flat0, method="DOP853", rtol=1e-10, atol=1e-13, t_eval=times)
    assert sol.success, sol.message
    return {name: np.array([unpack(col)[name] for col in sol.y.T]) for name in names}


# path, params, constant inputs, dt, horizon, bound on RK4's error at dt (relative to each
# variable's range; measured: 7.8e-5, 2.2e-6, 1.1e-8, 3.0e-5 -- spikes and bursts included)
RK4_CASES = {
    "qif_sfa": (QIF_SFA, {}, {"qif_sfa_op/I_ext": 3.0}, 0.01, 4.0, 5e-4),
    "jrc": (JRC, {}, {}, 1e-3, 0.3, 2e-5),
    "wc": (WC, {}, {}, 0.5, 40.0, 1e-7),
    "hh": (HH, {}, {"hh_op/I_ext": 10.0}, 0.02, 20.0, 3e-4),
}


@pytest.mark.parametrize("case", list(RK4_CASES))
def test_rk4_against_solve_ivp(case):
    """RK4 with a small dt agrees with solve_ivp to RK4's accuracy; halving dt cuts the error ~16x."""
    path, params, inputs, dt, horizon, bound = RK4_CASES[case]
    mod = compiled(path, "rk4")
    ref = reference_of(path)
    shapes = {label: (1,) for label in ref.system.populations}
    y0 = {k: np.full(1, v) for k, v in mod.STATES.items()}
    steps = round(horizon / dt)
    times = dt * np.arange(1, steps + 1)
    want = solve_reference(ref, y0, params, inputs, shapes, times[-1], times)
    errors = []
    for k in (1, 2):
        got = mod.run(y0, params, inputs, dt / k, steps * k, record=list(mod.STATES), sampling_steps=k)
        errors.append(max(relative_error(got[name], want[name]) for name in mod.STATES))
    assert errors[0] < bound, errors
    assert 10 < errors[0] / errors[1] < 26, errors   # fourth order: 16


def test_every_scheme_converges_to_solve_ivp_at_its_order():
    """The coupled seed population (constant input): errors at dt, dt/2, dt/4 against solve_ivp
    fall at each scheme's order."""
    y0, params, _ = _seed_arguments(n=5, batch=())
    inputs = {"li_op/I_ext": 0.4}
    ref = seed_reference()
    horizon, dts = 4.0, (0.2, 0.1, 0.05)
    want = solve_reference(ref, y0, params, inputs, {"": (5,)}, horizon, [horizon])
    for method in METHODS:
        mod = compiled(SEED, method, coupling=SEED_COUPLING)
        errors = []
        for dt in dts:
            got = mod.run(y0, params, inputs, dt, round(horizon / dt))
            errors.append(relative_error(got["final"]["li_op/v"], want["li_op/v"][-1]))
        order = np.polyfit(np.log(dts), np.log(errors), 1)[0]
        assert abs(order - get_scheme(method).order) < 0.3, (method, errors, order)


# --- CuPy through the C-compiler stand-in ---------------------------------------------------

@pytest.fixture(scope="module")
def fake_cupy(tmp_path_factory):
    """tests/fake_cupy.py as `cupy` (and a private cache folder) for the CuPy tests of this file."""
    with fake_cupy_installed(tmp_path_factory.mktemp("conformance-cupy-cache")) as module:
        yield module


def cupy_runs(mod, *args, **kwargs):
    """{strategy: result} of every strategy that can run these arguments (the default run alone
    when the module names no strategies)."""
    strategies = getattr(mod, "STRATEGIES", None)
    if not strategies:
        return {"default": mod.run(*args, **kwargs)}
    results = {}
    for strategy in strategies:
        try:
            results[strategy] = mod.run(*args, strategy=strategy, **kwargs)
        except ValueError as exc:
            assert "cannot run" in str(exc), exc
    assert results, "no strategy could run"
    return results


def as_host(result: dict) -> dict:
    """A CuPy module's result as plain NumPy arrays."""
    out = {k: np.asarray(v) for k, v in result.items() if k not in ("final", "strategy")}
    out["final"] = {k: np.asarray(v) for k, v in result["final"].items()}
    return out


@pytest.mark.parametrize("method", METHODS)
def test_cupy_seed_with_weights_every_scheme(fake_cupy, method):
    steps, dt = 30, 0.05
    y0, params, inputs = _seed_arguments(batch=(2,), steps=steps, seed=1)
    mod = compile_model(SEED, method=method, backend="cupy", coupling=SEED_COUPLING)
    record = ["li_op/v", "tanh_op/r", "li_op/r_in"]
    want = seed_reference().integrate(method, y0, params, inputs, dt, steps, {"": (2, 5)}, record=record,
                                      sampling_steps=3)
    for strategy, got in cupy_runs(mod, y0, params, inputs, dt, steps, record=record, sampling_steps=3,
                                   chunk_steps=4).items():
        compare_runs(as_host(got), want, record, f"cupy seed+W [{method}, {strategy}]")


@pytest.mark.parametrize("method", METHODS)
def test_cupy_time_dependent_model_every_scheme(fake_cupy, forced, method):
    mod = compile_model(forced, method=method, backend="cupy")
    steps, dt, t0, shape = 30, 0.05, 0.7, (2, 3)
    y0, params, inputs = random_arguments(mod, shape, steps, seed=8)
    outputs = list(mod.OUTPUTS)
    want = reference_of(forced).integrate(method, y0, params, inputs, dt, steps, {"": shape}, record=outputs,
                                          sampling_steps=2, t0=t0)
    for strategy, got in cupy_runs(mod, y0, params, inputs, dt, steps, record=outputs, sampling_steps=2,
                                   chunk_steps=8, t0=t0).items():
        compare_runs(as_host(got), want, outputs, f"cupy forced [{method}, {strategy}]")


@pytest.mark.parametrize("path", [JRC, HH, KURAMOTO, QIF_SFA, WC])
def test_cupy_templates(fake_cupy, path):
    """Circuits, many states, population means and sums, n = 3 units with a batch axis of 2."""
    mod = compile_model(path, method="rk4", backend="cupy")
    steps, dt, shape = 30, dt_for(path), (2, 3)
    y0, params, inputs = random_arguments(mod, shape, steps, seed=5)
    ref = reference_of(path)
    outputs = list(mod.OUTPUTS)
    want = ref.integrate("rk4", y0, params, inputs, dt, steps, {label: shape for label in ref.system.populations},
                         record=outputs, sampling_steps=2)
    for strategy, got in cupy_runs(mod, y0, params, inputs, dt, steps, record=outputs, sampling_steps=2,
                                   chunk_steps=8).items():
        compare_runs(as_host(got), want, outputs, f"cupy {path} [{strategy}]")


def test_cupy_network_of_four_populations(fake_cupy):
    spec = MultiNetwork(seed=3)
    net = spec.network("rk4", device="cuda")
    ref = spec.reference()
    y0, params, shapes = spec.arguments()
    steps = 30
    u = np.random.default_rng(2).standard_normal((steps, 4))
    obs = net.run(u, record_vars=MultiNetwork.RECORD, output="E")
    names = [f"{label}/{var}" for label, var in MultiNetwork.RECORD]
    want = ref.integrate("rk4", y0, params, {"E/li_op/I_ext": u}, 0.01, steps, shapes, record=names)
    assert_close(obs["out"], np.tanh(want["E/li_op/v"]), RTOL, "cupy network out")
    for key, name in zip(MultiNetwork.RECORD, names):
        assert_close(obs[key], want[name], RTOL, f"cupy network {name}")


# --- the compiled CPU backend (numba), where numba is installed -------------------------------
# Each module is compiled by numba once per test session (seconds): a few models that reach
# every kind of step statement (couplings, stage times, reductions, piecewise terms, circuits).

numba_installed = pytest.mark.skipif(not __import__("importlib.util").util.find_spec("numba"),
                                     reason="backend='numba' needs numba (pip install modelc[compiled])")


@numba_installed
@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_numba_seed_with_weights(method):
    steps, dt = 60, 0.05
    mod = compile_model(SEED, method=method, backend="numba", coupling=SEED_COUPLING)
    record = ["li_op/v", "tanh_op/r", "li_op/r_in"]
    for batch in [(), (3,)]:
        y0, params, inputs = _seed_arguments(batch=batch, steps=steps, seed=1)
        want = seed_reference().integrate(method, y0, params, inputs, dt, steps, {"": batch + (5,)}, record=record,
                                          sampling_steps=3)
        got = mod.run(y0, params, inputs, dt, steps, record=record, sampling_steps=3, chunk_steps=7)
        compare_runs(got, want, record, f"numba seed+W [{method}, batch {batch}]")


@numba_installed
def test_numba_time_dependent_model(forced):
    mod = compile_model(forced, method="heun", backend="numba")
    steps, dt, t0, shape = 30, 0.05, 0.7, (2, 3)
    y0, params, inputs = random_arguments(mod, shape, steps, seed=8)
    outputs = list(mod.OUTPUTS)
    want = reference_of(forced).integrate("heun", y0, params, inputs, dt, steps, {"": shape}, record=outputs,
                                          sampling_steps=2, t0=t0)
    got = mod.run(y0, params, inputs, dt, steps, record=outputs, sampling_steps=2, chunk_steps=8, t0=t0)
    compare_runs(got, want, outputs, "numba forced [heun]")


@numba_installed
@pytest.mark.parametrize("path", [QIF])
def test_numba_templates(path):
    """The QIF mean field (heun), batch 2 of 3 units. (numba's compile time grows with the kernel:
    Jansen-Rit's 14 states take 15-30 s on a busy machine, too long for the suite; the network of
    four populations and the time-dependent model cover several populations, mean and sum.)"""
    mod = compile_model(path, method="heun", backend="numba")
    steps, dt, shape = 30, dt_for(path), (2, 3)
    y0, params, inputs = random_arguments(mod, shape, steps, seed=5)
    ref = reference_of(path)
    outputs = list(mod.OUTPUTS)
    want = ref.integrate("heun", y0, params, inputs, dt, steps, {label: shape for label in ref.system.populations},
                         record=outputs, sampling_steps=2)
    got = mod.run(y0, params, inputs, dt, steps, record=outputs, sampling_steps=2, chunk_steps=8)
    compare_runs(got, want, outputs, f"numba {path}")


@numba_installed
def test_numba_network_of_four_populations():
    """Four populations of three models, edges between them, fan-in, per-unit parameters (euler)."""
    spec = MultiNetwork(seed=3)
    net = spec.network("euler", backend="numba")
    y0, params, shapes = spec.arguments()
    steps = 30
    u = np.random.default_rng(2).standard_normal((steps, 4))
    obs = net.run(u, record_vars=MultiNetwork.RECORD, output="E")
    names = [f"{label}/{var}" for label, var in MultiNetwork.RECORD]
    want = spec.reference().integrate("euler", y0, params, {"E/li_op/I_ext": u}, 0.01, steps, shapes, record=names)
    assert_close(obs["out"], np.tanh(want["E/li_op/v"]), RTOL, "numba network out")
    for key, name in zip(MultiNetwork.RECORD, names):
        assert_close(obs[key], want[name], RTOL, f"numba network {name}")


# --- delays: NumPy and numba against the history loop of docs/delays.md --------------------------
# DelayedReference keeps each delayed variable's history by hand and reads it at the stage times;
# the modules are compared across chunks and in two runs (the histories are state).

DELAYS = """
dde_op:
  base: OperatorTemplate
  equations: ["v' = -v/tau + r_in + I_ext - 0.5*past(v, d)", "r = tanh(v)"]
  variables: {v: output(0.2), r: output(0.0), tau: 2.0, d: 0.3, r_in: input(0.0), I_ext: input(0.0)}
dde:
  base: NodeTemplate
  operators: [dde_op]
leak_op:
  base: OperatorTemplate
  equations: "v' = -v/tau + r_in"
  variables: {v: output(0.0), tau: 1.0, r_in: input(0.0)}
leak:
  base: NodeTemplate
  operators: [leak_op]
loop:
  base: CircuitTemplate
  nodes: {a: dde, b: leak}
  edges:
    - [a/dde_op/r, b/leak_op/r_in, null, {weight: 2.0, delay: 0.35}]
    - [b/leak_op/v, a/dde_op/r_in, null, {weight: -1.0, delay: 0.2}]
"""
# numba compiles each module for seconds: it runs the circuit with rk4 (reads between steps, one
# delay per unit) and the network with euler; NumPy runs all four
DELAY_CASES = [("euler", "numpy"), ("rk4", "numpy"), pytest.param("rk4", "numba", marks=numba_installed)]


@pytest.fixture(scope="module")
def delay_models(tmp_path_factory):
    path = tmp_path_factory.mktemp("delays") / "delays.yaml"
    path.write_text(DELAYS)
    return path


@pytest.mark.parametrize("method, backend", DELAY_CASES)
def test_delays_of_edges_and_past_against_the_history_loop(delay_models, method, backend):
    """A circuit's edge delays (a computed variable 3.5 steps back: read between steps; a state 2
    steps back) and past(v, d) with one d per unit (1, 2.5 and 4 steps), a batch of 2 x 3 units,
    the records of r_in (read at t + dt) every second step, across chunks of 7 steps, and the
    same run in two parts (numba: going on from NumPy's history, and on two threads)."""
    path = f"{delay_models}:loop"
    mod = compile_model(path, method=method, backend=backend, vector_params=["a/dde_op/d"])
    dt, steps, shape = 0.1, 60, (2, 3)
    rng = np.random.default_rng(11)
    y0 = {"a/dde_op/v": rng.standard_normal(shape), "b/leak_op/v": rng.standard_normal(shape)}
    params = {"a/dde_op/d": np.array([0.1, 0.25, 0.4]), "a/dde_op/tau": 1.5}
    inputs = {"a/dde_op/I_ext": rng.standard_normal((steps,) + shape)}
    record = ["a/dde_op/v", "b/leak_op/v", "a/dde_op/r_in", "b/leak_op/r_in"]
    want = DelayedReference(build_system(load(path))).integrate(
        method, y0, params, inputs, dt, steps, {"a": shape, "b": shape}, record=record, sampling_steps=2)
    got = mod.run(y0, params, inputs, dt, steps, record=record, sampling_steps=2, chunk_steps=7)
    compare_runs(got, want, record, f"{backend} delays [{method}]")
    before = compile_model(path, method=method, vector_params=["a/dde_op/d"]) if backend == "numba" else mod
    first = before.run(y0, params, {k: v[:24] for k, v in inputs.items()}, dt, 24, record=record, sampling_steps=2)
    more = {"threads": 2} if backend == "numba" else {}
    second = mod.run(first["final"], params, {k: v[24:] for k, v in inputs.items()}, dt, steps - 24, record=record,
                     sampling_steps=2, history=first["history"], **more)
    compare_runs({**{k: np.concatenate([first[k], second[k]]) for k in record}, "final": second["final"]}, want,
                 record, f"{backend} delays in two runs [{method}]")


@pytest.mark.parametrize("method, backend", DELAY_CASES[:2] + [pytest.param("euler", "numba", marks=numba_installed)])
def test_network_delays_per_source_unit_against_the_history_loop(delay_models, method, backend):
    """RectiPy's add_edge(delays=): one delay per source unit of a computed variable (tanh: 1, 3
    and 4 steps), one for every unit of a state (2 steps) that past(v, d) delays too (a history
    of each: 0 and v's initial value before t0); two Network runs go on as one (the reference's
    run of both lengths)."""
    node = f"{delay_models}:dde"
    rng = np.random.default_rng(12)
    w_ba, w_ab, d_a = rng.standard_normal((2, 3)), rng.standard_normal((3, 2)), np.array([0.1, 0.25, 0.4])
    dt, steps = 0.1, 40
    net = Network(dt=dt, backend=None if backend == "numpy" else backend)
    net.add_diffeq_node("A", node, N=3, input_var="dde_op/I_ext", output_var="dde_op/v", method=method,
                        node_vars={"dde_op/d": d_a})
    net.add_diffeq_node("B", node, N=2, output_var="dde_op/v", method=method)
    net.add_edge("A", "B", weights=w_ba, source_var="dde_op/r", target_var="dde_op/r_in", delays=[1, 3, 4])
    net.add_edge("B", "A", weights=w_ab, source_var="dde_op/v", target_var="dde_op/r_in", delays=2, feedback=True)
    u = rng.standard_normal((2 * steps, 3))
    record = [("A", "dde_op/v"), ("B", "dde_op/v"), ("B", "dde_op/r_in")]
    runs = [net.run(u[:steps], record_vars=record, output="B"), net.run(u[steps:], record_vars=record, output="B")]
    reference = DelayedReference(build_network(
        {"A": load(node), "B": load(node)},
        [Connection("A/dde_op/r", "B/dde_op/r_in", "W_BA", delays="D_BA"),
         Connection("B/dde_op/v", "A/dde_op/r_in", "W_AB", delays="D_AB")]))
    params = {"W_BA": w_ba, "W_AB": w_ab, "D_BA": dt * np.array([1.0, 3.0, 4.0]), "D_AB": dt * np.array([2.0, 2.0]),
              "A/dde_op/d": d_a}
    names = [f"{label}/{var}" for label, var in record]
    want = reference.integrate(method, {}, params, {"A/dde_op/I_ext": u}, dt, 2 * steps, {"A": (3,), "B": (2,)},
                               record=names)
    for key, name in zip(record, names):
        assert_close(np.concatenate([run[key] for run in runs]), want[name], RTOL, f"{backend} network {name}")
    assert want["B/dde_op/r_in"][3:].std() > 0.1  # (the delayed coupling carries something)


# --- complex variables: NumPy and numba against a hand-written RK4 --------------------------------

LANDAU = """
sl_op:
  base: OperatorTemplate
  equations: ["z' = (lam + i*omega)*z - absv(z)^2*z + u + k*s_in - 0.3*past(z, d)", "x = real(z)",
              "phi = angle(z)", "w = conj(z)*exp(i*phi) + sqrt(z)"]
  variables: {z: output(0.5+0.2j), i: 1j, lam: 1.0, omega: 3.0, k: 0.5, d: 0.02, u: input(0.0),
              s_in: input(complex), x: output, phi: output, w: variable(complex)}
sl:
  base: NodeTemplate
  operators: [sl_op]
"""


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=numba_installed)])
def test_complex_population_with_weights_against_a_hand_loop(tmp_path, backend):
    """Stuart-Landau oscillators coupled by W @ z and delayed by 2 steps (rk4: its half steps read
    between the stored steps): the complex state and computed variables (real, angle, conj, exp
    and sqrt of complex values), batch 2 (gemm) and one member (gemv)."""
    path = tmp_path / "landau.yaml"
    path.write_text(LANDAU)
    coupling = dict(source_var="sl_op/z", target_var="sl_op/s_in", input_var="sl_op/u", output_var="sl_op/z")
    mod = compile_model(f"{path}:sl", method="rk4", backend=backend, coupling=coupling)
    assert mod.DTYPE == np.complex128
    rng = np.random.default_rng(13)
    dt, steps, n = 0.01, 150, 3
    weights = rng.standard_normal((n, n))
    record = ["sl_op/z", "sl_op/x", "sl_op/phi", "sl_op/w"]
    for batch in [(2,), ()]:
        z0 = rng.standard_normal(batch + (n,)) + 1j * rng.standard_normal(batch + (n,))
        u = rng.standard_normal((steps,) + batch + (n,))
        got = mod.run({"sl_op/z": z0}, {"weights": weights}, {"sl_op/u": u}, dt, steps, record=record, chunk_steps=40)
        z, want, past = {"z": z0}, [], []  # past[m]: z at the start of step m (z0 before t0)

        def delayed(k, stage_time):  # 2 - c steps before step k: z_{k-2} (c = 0), between (c = 1/2), z_{k-1}
            back = 2.0 - round(2 * (stage_time - k * dt) / dt) / 2
            whole = int(back)
            at = [past[max(k - whole - m, 0)] for m in (0, 1)]
            return at[0] if back == whole else (1 - (back - whole)) * at[0] + (back - whole) * at[1]
        for k, row in enumerate(u):
            past.append(z["z"])
            z = rk4_step(lambda t, y, k=k, row=row: {"z": (1.0 + 3.0j) * y["z"] - np.abs(y["z"]) ** 2 * y["z"] + row +
                                                     0.5 * y["z"] @ weights.T - 0.3 * delayed(k, t)}, k * dt, z, dt)
            want.append(z["z"])
        want = np.array(want)
        phi = np.angle(want)
        expected = {"sl_op/z": want, "sl_op/x": want.real, "sl_op/phi": phi,
                    "sl_op/w": np.conj(want) * np.exp(1j * phi) + np.sqrt(want)}
        for name in record:
            for part in (np.real, np.imag):
                assert_close(part(got[name]), part(expected[name]), RTOL, f"{backend} complex {name} {batch}")
        assert np.abs(want[-1]).max() > 0.5  # (the oscillators run)
