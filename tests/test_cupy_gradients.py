"""The CuPy backend's grad() (codegen/cupy/gradients.py), tested on a CPU (no GPU, no CuPy needed).

Its kernels are compiled as C with gcc and run by the stand-in (tests/fake_cupy.py, as in
test_cupy_backend.py); cuBLAS's matmuls are NumPy's. The reference is the NumPy backend's
grad(), which test_gradients.py checks against central differences of run() (and against
torch): the gradients must agree to 1e-10 of each gradient's size, in float64.

* The seed network in every scheme: recurrent weights, a scalar parameter folded into a loop
  invariant, one folded into nothing, a per-unit vector, the initial state; a computed variable's
  cotangent besides the state's; one trial and a batch of B trials.
* Two populations and a function node: edge weights, per-unit time constants, a readout.
* Every shipped model the NumPy backward pass supports: all its scalar parameters (the schemes
  taken in turn, every one used).
* The launches: a product of a coupling is one cuBLAS matmul forward, its transpose one
  backwards; repeated segments replay one CUDA graph (and, when capture fails, the same launches
  give the same numbers).
* Network(device="cuda").grad and fit_bptt give the CPU network's numbers.
"""
from __future__ import annotations

import glob
import pathlib

import numpy as np
import pytest

from generated import fake_cupy_installed, load_source
from modelc.codegen.generate import generate
from modelc.codegen.options import METHODS
from modelc.errors import UnsupportedFeatureError
from modelc.ir import Connection, build_network, build_system
from modelc.spec import CircuitTemplate, Library, NodeTemplate, load

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
RTOL = 1e-10


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    with fake_cupy_installed(tmp_path_factory.mktemp("cache")) as module:
        yield module


def backends(system, method, trainable, folder: pathlib.Path, name: str):
    """(NumPy module, CuPy module) of one system, both with grad()."""
    numpy = load_source(generate(system, method, trainable=trainable), f"{name}_numpy", folder)
    cupy = load_source(generate(system, method, backend="cupy", trainable=trainable), f"{name}_cupy", folder)
    return numpy, cupy


def cupy_grad(module, *args, strategy="block", **kwargs) -> dict:
    """module.grad(...) with the given strategy, and the check that it ran."""
    result = module.grad(*args, strategy=strategy, **kwargs)
    assert module.LAST_GRAD["strategy"] == strategy, module.LAST_GRAD
    return result


def assert_same_gradients(got: dict, want: dict):
    assert set(got["params"]) == set(want["params"]) and set(got["y0"]) == set(want["y0"])
    for part in ("params", "y0"):
        for name, value in want[part].items():
            mine = got[part][name]
            assert isinstance(mine, np.ndarray) and mine.shape == np.shape(value), (part, name, np.shape(mine))
            scale = max(float(np.max(np.abs(value))), 1e-300)
            error = float(np.max(np.abs(mine - value))) / scale
            assert error <= RTOL, f"{part} {name}: off by {error:.1e} of its size"


# --- the seed network: every scheme, every kind of trainable, one trial and a batch ------------------

SEED_TRAINABLE = ["weights", "li_op/tau", "li_op/k", "li_op/eta"]


@pytest.fixture(scope="module")
def seed_modules(fake, tmp_path_factory):
    system = build_system(load(SEED), [Connection("tanh_op/r", "li_op/r_in", "weights")], vector_params=["li_op/eta"])
    folder = tmp_path_factory.mktemp("seed")
    return {method: backends(system, method, SEED_TRAINABLE, folder, method) for method in METHODS}


def seed_problem(shape, steps, sampling_steps, seed=1, computed=True):
    rng = np.random.default_rng(seed)
    n = shape[-1]
    rows = (steps // sampling_steps,) + shape
    params = {"weights": rng.standard_normal((n, n)), "li_op/tau": 2.0, "li_op/k": 0.7,
              "li_op/eta": 0.1 * rng.standard_normal(n)}
    cotangents = {"li_op/v": rng.standard_normal(rows)}
    if computed:  # r = tanh(v), and r_in = W @ r through the readout of the same matrix
        cotangents.update({"tanh_op/r": rng.standard_normal(rows), "li_op/r_in": rng.standard_normal(rows)})
    return ({"li_op/v": rng.standard_normal(shape)}, params, {"li_op/I_ext": rng.standard_normal((steps,) + shape)},
            0.05, steps, cotangents)


@pytest.mark.parametrize("strategy", ["block", "graph"])
@pytest.mark.parametrize("method", METHODS)
def test_seed_gradients_in_every_scheme(seed_modules, method, strategy):
    numpy, cupy = seed_modules[method]
    args = seed_problem((4,), 23, 2)
    assert_same_gradients(cupy_grad(cupy, *args, sampling_steps=2, checkpoint_steps=5, strategy=strategy),
                          numpy.grad(*args, sampling_steps=2, checkpoint_steps=5))


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_a_batch_of_trials_is_one_program(seed_modules, method):
    """B = 3 trials in one batched forward and backward; per-trial inputs and initial states,
    shared parameters (their gradients summed over the trials, y0's per trial)."""
    numpy, cupy = seed_modules[method]
    args = seed_problem((3, 4), 17, 1, seed=2)
    got = cupy_grad(cupy, *args, checkpoint_steps=4, strategy="block" if method == "euler" else "graph")
    assert got["y0"]["li_op/v"].shape == (3, 4)
    assert_same_gradients(got, numpy.grad(*args, checkpoint_steps=4))


def test_given_checkpoints_and_segment_lengths_change_nothing(seed_modules):
    numpy, cupy = seed_modules["heun"]
    y0, params, inputs, dt, steps, cotangents = seed_problem((4,), 30, 1, seed=3, computed=False)
    checkpoints = []
    cupy.run(y0, params, inputs, dt, steps, record=[], chunk_steps=7,
             on_chunk=lambda stop, states: checkpoints.append((stop, states)))
    want = numpy.grad(y0, params, inputs, dt, steps, cotangents, checkpoint_steps=1000)
    assert_same_gradients(cupy.grad(y0, params, inputs, dt, steps, cotangents, checkpoint_steps=7,
                                    checkpoints=checkpoints), want)
    assert_same_gradients(cupy.grad(y0, params, inputs, dt, steps, cotangents, checkpoint_steps=1), want)


def test_couplings_are_cublas_matmuls_and_segments_replay_a_graph(seed_modules, fake):
    """Forward, each stage's product is one matmul; backwards, its transpose (W^T lambda) is one.
    Four segments of the same shape: captured once, replayed; a refused capture gives the same numbers."""
    numpy, cupy = seed_modules["heun"]
    kinds = [launch[0] for launch in cupy._GRAD_FORWARD]
    assert kinds.count("matmul") == 2 and all(not launch[4] for launch in cupy._GRAD_FORWARD if launch[0] == "matmul")
    assert [launch[4] for launch in cupy._GRAD_REVERSE if launch[0] == "matmul"] == [True, True]
    args = seed_problem((4,), 20, 1, seed=4, computed=False)
    checkpoints = []   # (the forward run made first: what grad() launches is all that is counted)
    cupy.run(*args[:5], record=[], chunk_steps=5, on_chunk=lambda stop, states: checkpoints.append((stop, states)))
    fake.reset_calls()
    captured = cupy_grad(cupy, *args, checkpoint_steps=5, checkpoints=checkpoints, strategy="graph")
    assert [c for c, _ in fake.calls].count("begin_capture") == 1
    assert [c for c, _ in fake.calls].count("graph.launch") == 4
    # one segment captured (5 steps): a step's last kernel begins the next step, forward and backwards
    per_step = sum(launch[0] == "kernel" for launch in cupy._GRAD_FORWARD + cupy._GRAD_REVERSE)
    assert [c for c, _ in fake.calls].count("kernel") == 2 + 5 * (per_step - 2)
    fake.Stream.fail_capture = True
    try:
        launched = cupy_grad(cupy, *args, checkpoint_steps=5, strategy="graph")
    finally:
        fake.Stream.fail_capture = False
    fake.reset_calls()
    blocks = cupy_grad(cupy, *args, checkpoint_steps=5)   # one launch per segment
    assert [detail[0] for c, detail in fake.calls if c == "kernel"].count("mc_grad_block") == 4
    want = numpy.grad(*args, checkpoint_steps=5)
    for got in (captured, launched, blocks):
        assert_same_gradients(got, want)


def test_grad_kernels_print_the_reverse_statements(seed_modules):
    """The reverse kernels are the adjoint's statements in C: tanh's derivative reads the forward
    value r (1 - r^2, as adjoint.py writes it), never a derivative taken again in the backend."""
    _, cupy = seed_modules["euler"]
    reverse = [name for kind, name, *_ in cupy._GRAD_REVERSE if kind == "kernel"]
    source = cupy._SOURCE
    bodies = [source[source.index(f"void {name}("):] for name in reverse]
    assert any("(1.0 - (r_algebraic0*r_algebraic0))" in body.split("\n}\n")[0] for body in bodies)
    assert "tanh(" not in "".join(body.split("\n}\n")[0] for body in bodies)


# --- two populations, a function node, edge weights, per-unit parameters ------------------------------

NETWORK_OPS = """
li:
  base: OperatorTemplate
  equations: "v' = -v/tau + k*w_in + I"
  variables: {v: output(0.0), tau: 5.0, k: 1.0, w_in: input(0.0), I: input(0.0)}
f:
  base: OperatorTemplate
  equations: "y = tanh(z) + b*I2"
  variables: {y: output(0.0), z: input(0.0), b: 0.2, I2: input(0.0)}
"""


@pytest.mark.parametrize("method", ["midpoint", "rk4"])
def test_edge_weights_and_per_unit_parameters_of_a_network(fake, tmp_path, method):
    ops = tmp_path / "ops.yaml"
    ops.write_text(NETWORK_OPS)
    populations = {"A": load(f"{ops}:li"), "R": load(f"{ops}:f"), "B": load(f"{ops}:li")}
    system = build_network(populations, [Connection("A/li/v", "R/f/z", "W_ar"), Connection("R/f/y", "B/li/w_in", "W_rb"),
                                         Connection("B/li/v", "A/li/w_in", "W_ba")], vector_params=["A/li/tau"])
    trainable = ["W_ar", "W_rb", "W_ba", "A/li/tau", "B/li/k", "R/f/b"]
    numpy, cupy = backends(system, method, trainable, tmp_path, "network")
    rng = np.random.default_rng(5)
    steps, batch = 16, (2,)
    params = {**numpy.default_params(), "W_ar": rng.standard_normal((2, 3)), "W_rb": rng.standard_normal((4, 2)),
              "W_ba": rng.standard_normal((3, 4)), "A/li/tau": np.array([2.0, 3.0, 4.0])}
    y0 = {"A/li/v": rng.standard_normal(batch + (3,)), "B/li/v": rng.standard_normal(batch + (4,))}
    inputs = {"A/li/I": rng.standard_normal((steps,) + batch + (3,)), "R/f/I2": rng.standard_normal((steps, 2))}
    rows = steps // 2
    cotangents = {"B/li/v": rng.standard_normal((rows,) + batch + (4,)), "R/f/y": rng.standard_normal((rows,) + batch + (2,))}
    args = (y0, params, inputs, 0.05, steps, cotangents)
    assert_same_gradients(cupy_grad(cupy, *args, sampling_steps=2, checkpoint_steps=6, strategy="graph"),
                          numpy.grad(*args, sampling_steps=2, checkpoint_steps=6))
    assert cupy.grad(*args, sampling_steps=2) and cupy.LAST_GRAD["strategy"] == "graph"   # (three groups)
    for bad in ("block", "bogus"):   # (the generated module's own InvalidValueError, code MC202)
        with pytest.raises(cupy.InvalidValueError, match="strategy"):
            cupy.grad(*args, sampling_steps=2, strategy=bad)


REDUCTIONS = """
pool:
  base: OperatorTemplate
  equations:
    - "x' = -x/tau + k*(x - mean(x))/(1 + mean((x - mean(x))^2)) + c*sum(tanh(x))/10 + u"
    - "p = exp(x)/sum(exp(x))"
  variables: {x: output(0.1), p: variable(0.0), tau: 2.0, k: 0.8, c: 0.3, u: input(0.0)}
"""


def test_gradients_through_population_means_and_sums(fake, tmp_path, method="heun"):
    """mean() and sum() in a derivative (a variance: a mean inside a mean) and a softmax readout:
    the reductions run as the mc_reduce kernel, forward (kept per step) and backwards (one per term)."""
    path = tmp_path / "pool.yaml"
    path.write_text(REDUCTIONS)
    system = build_system(load(f"{path}:pool"), vector_params=["pool/tau"])
    numpy, cupy = backends(system, method, ["pool/tau", "pool/k", "pool/c"], tmp_path, "pool")
    assert any(launch[0] == "reduce" for launch in cupy._GRAD_REVERSE)
    rng = np.random.default_rng(7)
    steps, shape = 14, (2, 5)
    args = ({"pool/x": rng.standard_normal(shape)}, {"pool/tau": rng.uniform(1.0, 3.0, 5)},
            {"pool/u": rng.standard_normal((steps,) + shape)}, 0.05, steps,
            {"pool/x": rng.standard_normal((steps // 2,) + shape), "pool/p": rng.standard_normal((steps // 2,) + shape)})
    want = numpy.grad(*args, sampling_steps=2, checkpoint_steps=4)
    for strategy in ("block", "graph"):
        assert_same_gradients(cupy_grad(cupy, *args, sampling_steps=2, checkpoint_steps=4, strategy=strategy), want)


TIMED = """
osc:
  base: OperatorTemplate
  equations:
    - "x' = -x/tau + a*sin(w*t)*y + b*cos(t) + u"
    - "y' = -y + tanh(x)*t"
  variables: {x: output(0.1), y: variable(0.2), tau: 2.0, a: 0.5, w: 3.0, b: 0.7, u: input(0.0)}
"""


def test_gradients_of_a_model_that_reads_the_time(fake, tmp_path):
    """t at every stage's time (rk4: t + dt/2, t + dt), from t0; a trained parameter inside a
    term of t alone (a drive: its chain is taken per chunk over the steps' times)."""
    path = tmp_path / "osc.yaml"
    path.write_text(TIMED)
    trainable = ["osc/tau", "osc/a", "osc/w", "osc/b"]
    numpy, cupy = backends(build_system(load(f"{path}:osc")), "rk4", trainable, tmp_path, "osc")
    rng = np.random.default_rng(8)
    steps = 17
    args = ({"osc/x": rng.standard_normal(3), "osc/y": rng.standard_normal(3)}, {},
            {"osc/u": rng.standard_normal((steps, 3))}, 0.05, steps,
            {"osc/x": rng.standard_normal((steps, 3)), "osc/y": rng.standard_normal((steps, 3))})
    want = numpy.grad(*args, t0=0.3, checkpoint_steps=4)
    for strategy in ("block", "graph"):
        assert_same_gradients(cupy_grad(cupy, *args, t0=0.3, checkpoint_steps=4, strategy=strategy), want)


# --- every shipped model: its scalar parameters ----------------------------------------------------------

def _shipped_models() -> list:
    library, found = Library(), []
    for path in sorted(glob.glob(str(ROOT / "models" / "**" / "*.yaml"), recursive=True)):
        for template in library.templates_in(pathlib.Path(path)):
            if isinstance(template, (NodeTemplate, CircuitTemplate)):
                found.append(f"{path}:{template.name}")
    return [pytest.param(path, METHODS[k % len(METHODS)], id=f"{pathlib.Path(path).stem}:{path.rsplit(':', 1)[1]}")
            for k, path in enumerate(found)]


@pytest.mark.parametrize("path, method", _shipped_models())
def test_every_shipped_model(fake, tmp_path, path, method):
    system = build_system(load(path))
    trainable = [n for n, p in system.params.items() if p.shape == "scalar"]
    if not system.states or not trainable:
        pytest.skip("nothing to differentiate")
    try:
        numpy = load_source(generate(system, method, trainable=trainable), "model_numpy", tmp_path)
    except UnsupportedFeatureError as error:  # (mean()/sum(), events): the NumPy backward pass refuses it too
        with pytest.raises(UnsupportedFeatureError):
            generate(system, method, backend="cupy", trainable=trainable)
        pytest.skip(error.message)
    cupy = load_source(generate(system, method, backend="cupy", trainable=trainable), "model_cupy", tmp_path)
    rng = np.random.default_rng(4)
    shape, steps = (2,), 12
    dt = 1e-3 if "hodgkin" in path or "jansenrit" in path else 1e-2
    y0 = {k: v + 0.01 * rng.standard_normal(shape) for k, v in numpy.STATES.items()}
    inputs = {k: 0.1 * rng.standard_normal((steps,) + shape) for k in numpy.INPUTS}
    cotangents = {k: rng.standard_normal((steps,) + shape) for k in numpy.STATES}
    args = (y0, dict(numpy.PARAMS), inputs, dt, steps, cotangents)
    assert_same_gradients(cupy.grad(*args, checkpoint_steps=5), numpy.grad(*args, checkpoint_steps=5))


# --- the Network on a GPU --------------------------------------------------------------------------------

def test_network_on_cuda_trains_like_on_cpu(fake):
    from modelc import Network
    rng = np.random.default_rng(6)
    n, steps = 5, 40
    weights = 0.5 * rng.standard_normal((n, n))

    def network(device):
        net = Network(dt=1e-2, device=device)
        net.add_diffeq_node("tanh", SEED, weights=weights, source_var="tanh_op/r", target_var="li_op/r_in",
                            input_var="li_op/I_ext", output_var="li_op/v", train_params=["weights"])
        return net

    cpu, gpu = network("cpu"), network("cuda")
    assert gpu.backend == "cupy"
    inputs, targets = rng.standard_normal((steps, n)), 0.1 * rng.standard_normal((steps, n))
    (loss_cpu, grads_cpu), (loss_gpu, grads_gpu) = cpu.grad(inputs, targets), gpu.grad(inputs, targets)
    assert loss_gpu == pytest.approx(loss_cpu, rel=RTOL)
    assert_same_gradients({"params": grads_gpu, "y0": {}}, {"params": grads_cpu, "y0": {}})
    online = [net.fit_bptt(inputs, targets, optimizer="sgd", lr=1e-2, update_steps=10, verbose=False)
              for net in (cpu, gpu)]
    np.testing.assert_allclose(online[1]["loss"], online[0]["loss"], rtol=RTOL)
    trials, trial_targets = rng.standard_normal((3, steps, n)), 0.1 * rng.standard_normal((3, steps, n))
    fitted = [net.fit_bptt(trials, trial_targets, optimizer="adam", lr=1e-2, epochs=3, verbose=False)
              for net in (cpu, gpu)]
    np.testing.assert_allclose(fitted[1]["epoch_loss"], fitted[0]["epoch_loss"], rtol=RTOL)
    assert fitted[0]["epoch_loss"][-1] < fitted[0]["epoch_loss"][0]
