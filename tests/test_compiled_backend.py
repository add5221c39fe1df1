"""The compiled CPU backend (backend='numba'): events, noise, threads and refusals, each against
the NumPy backend's run of the same arguments (which tests/test_events.py and test_noise.py hold
to hand-written loops); the conformance suite compares it with the independent references.

numba compiles each module once per test session (seconds on a quiet machine): the tests share
a few modules."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from modelc import Network
from modelc.errors import BackendUnavailableError, UnsupportedFeatureError
from modelc.runtime.compiler import compile_model, compile_source

pytestmark = pytest.mark.skipif(not importlib.util.find_spec("numba"),
                                reason="backend='numba' needs numba (pip install modelc[compiled])")

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
SEED_COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext", output_var="li_op/v")
LIF = "neuron_model_templates.spiking_neurons.lif.lif"
LIF_COUPLING = dict(source_var="lif_op/s", target_var="lif_op/s_in", input_var="lif_op/I_ext", output_var="lif_op/s")
NOISY = """
coupled_op:
  base: OperatorTemplate
  equations: "v' = -v/tau + I_ext + 0.3*r_in*xi + sigma*xi"
  variables: {v: output(0.0), tau: 1.0, sigma: 0.2, r_in: input(0.0), I_ext: input(0.0)}
tanh_op:
  base: OperatorTemplate
  equations: "r = tanh(v)"
  variables: {r: output(0.0), v: input(0.0)}
coupled:
  base: NodeTemplate
  operators: [coupled_op, tanh_op]
"""


def assert_same(got: dict, want: dict, names, atol=1e-12):
    for name in names:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=atol, err_msg=name)
    for name, value in want["final"].items():
        np.testing.assert_allclose(got["final"][name], value, rtol=0, atol=atol, err_msg=f"final {name}")


def test_events_with_refractory_time_and_coupled_spikes():
    """A LIF network (W @ s, refractory hold, spike counts per row) spikes exactly as NumPy's run."""
    n, steps, dt = 20, 400, 0.05
    rng = np.random.default_rng(3)
    params = {"weights": rng.uniform(0, 0.4, (n, n)), "lif_op/t_ref": 0.2, "lif_op/tau": 5.0}
    inputs = {"lif_op/I_ext": 0.25 + 0.1 * rng.standard_normal((steps, n))}
    y0 = {"lif_op/v": rng.uniform(0, 1, n)}
    record = ["lif_op/v", "lif_op/s", "lif_op/spike"]
    want = compile_model(LIF, coupling=LIF_COUPLING).run(y0, params, inputs, dt, steps, record=record, sampling_steps=4)
    got = compile_model(LIF, coupling=LIF_COUPLING, backend="numba").run(y0, params, inputs, dt, steps, record=record,
                                                                         sampling_steps=4, chunk_steps=64)
    assert want["lif_op/spike"].sum() > 20  # the test sees spikes (and holds)
    assert_same(got, want, record)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    path = tmp_path_factory.mktemp("noisy") / "noisy.yaml"
    path.write_text(NOISY)
    return f"{path}:coupled"


def test_noise_draws_numpys_stream(noisy):
    """Additive and multiplicative (W @ tanh(v)) noise, stochastic Heun, a batch of 3: the same
    random numbers as the NumPy module for a seed, and a run in two parts equals one run."""
    coupling = dict(source_var="tanh_op/r", target_var="coupled_op/r_in", input_var="coupled_op/I_ext",
                    output_var="coupled_op/v")
    n, steps, dt = 6, 120, 0.01
    rng = np.random.default_rng(4)
    params = {"weights": rng.standard_normal((n, n)) / n}
    inputs = {"coupled_op/I_ext": rng.standard_normal((steps, 3, n))}
    y0 = {"coupled_op/v": rng.standard_normal((3, n))}
    record = ["coupled_op/v", "tanh_op/r"]
    want = compile_model(noisy, method="heun", coupling=coupling).run(y0, params, inputs, dt, steps, record=record,
                                                                        seed=11)
    mod = compile_model(noisy, method="heun", coupling=coupling, backend="numba")
    assert_same(mod.run(y0, params, inputs, dt, steps, record=record, seed=11, chunk_steps=50), want, record)
    first = mod.run(y0, params, {k: v[:50] for k, v in inputs.items()}, dt, 50, seed=11)
    second = mod.run(first["final"], params, {k: v[50:] for k, v in inputs.items()}, dt, steps - 50,
                     seed=first["rng"])
    np.testing.assert_allclose(second["final"]["coupled_op/v"], want["final"]["coupled_op/v"], rtol=0, atol=1e-12)


def test_threads_split_the_batch_and_change_no_number():
    mod = compile_model(SEED, coupling=SEED_COUPLING, backend="numba")
    rng = np.random.default_rng(5)
    n, batch, steps = 8, 5, 100
    args = ({"li_op/v": rng.standard_normal((batch, n))}, {"weights": rng.standard_normal((n, n)) / n},
            {"li_op/I_ext": rng.standard_normal((steps, batch, n))}, 0.05, steps)
    one = mod.run(*args)
    two = mod.run(*args, threads=2)
    np.testing.assert_array_equal(one["li_op/v"], two["li_op/v"])
    want = compile_model(SEED, coupling=SEED_COUPLING).run(*args)
    assert_same(one, want, ["li_op/v"])
    with pytest.raises(ValueError, match="threads"):
        mod.run(*args, threads=0)


def test_network_runs_on_the_compiled_backend():
    n, steps = 10, 200
    rng = np.random.default_rng(6)
    weights = rng.standard_normal((n, n)) / np.sqrt(n)
    u = rng.standard_normal((steps, n))
    runs = []
    for backend in (None, "numba"):
        net = Network(dt=1e-2, backend=backend)
        net.add_diffeq_node("tanh", SEED, weights=weights, source_var="tanh_op/r", target_var="li_op/r_in",
                            input_var="li_op/I_ext", output_var="li_op/v")
        runs.append(net.run(u)["out"])
    np.testing.assert_allclose(runs[1], runs[0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="does not run on device='cpu'"):
        Network(dt=1e-2, backend="cupy")


@pytest.fixture
def complex_model(tmp_path):
    """A complex oscillator whose equation text is filled in by each test."""
    def write(term):
        path = tmp_path / "complex.yaml"
        path.write_text(f'c_op:\n  base: OperatorTemplate\n  equations: "z\' = -z + {term}"\n'
                        '  variables: {z: output(0.5+0.2j)}\n')
        return f"{path}:c_op"
    return write


def test_what_the_backend_does_not_do_is_refused_by_name(monkeypatch, complex_model):
    assert "def _grad_segment(" in compile_source(SEED, backend="numba", coupling=SEED_COUPLING,
                                                  trainable=["li_op/tau"])  # (gradients: test_numba_gradients.py)
    # numba orders no complex numbers (NumPy orders them lexicographically): refused, named
    for term in ["max(z, 0.1)", "sign(z)", "heaviside(z)", "exprel(z)", "where(z > 0, z, 0)"]:
        with pytest.raises(UnsupportedFeatureError, match="needs real values on the compiled backend"):
            compile_source(complex_model(term), backend="numba")
    compile_source(complex_model("where(real(z) > 0, absv(z), 0)*heaviside(imag(z))"), backend="numba")  # real: fine
    monkeypatch.setitem(sys.modules, "numba", None)  # numba missing: the error names the extra
    with pytest.raises(BackendUnavailableError, match=r"modelc\[compiled\]"):
        Network(dt=1e-2, backend="numba")


def test_the_written_module_runs_without_modelc(tmp_path):
    """`modelc compile --backend numba -o` writes a module that imports NumPy and numba only."""
    from modelc.cli import main
    out = tmp_path / "seed_numba.py"
    assert main(["compile", SEED, "--backend", "numba", "-o", str(out)]) == 0
    source = out.read_text()
    assert "import numba" in source and "modelc" not in source.split('"""', 2)[2].split("KEY =")[0]


def test_a_new_process_loads_the_compiled_steps_from_the_cache(tmp_path):
    """numba's cache beside the module file: a second process loads the kernel and compiles nothing
    (the module, as `modelc compile -o` writes it, imported from its file by two processes)."""
    import subprocess
    path = tmp_path / "qif_numba.py"
    path.write_text(compile_source("model_templates.neural_mass_models.qif.qif", backend="numba"))
    script = (
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('qif_numba', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "mod.run({}, {}, {}, 1e-3, 10)\n"
        "print(sum(mod._KERNELS[False].stats.cache_hits.values()))\n")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert [r.stdout.split()[-1] for r in runs] == ["0", "1"]


def test_a_sweep_reads_shared_inputs_once_and_splits_unevenly():
    """Inputs the same for every member (steps, n) are one row of the kernel's arguments, tau one
    row per member, the coupling's scale dt*k applied where the product is read; 5 members on 3
    threads (the calling thread and two workers): NumPy's numbers."""
    mod = compile_model(SEED, coupling=SEED_COUPLING, backend="numba", vector_params=("li_op/tau",))
    rng = np.random.default_rng(8)
    n, members, steps = 7, 5, 90
    args = ({"li_op/v": rng.standard_normal((members, n))},
            {"weights": rng.standard_normal((n, n)) / n, "li_op/tau": rng.uniform(1, 3, (members, 1)), "li_op/k": 1.7},
            {"li_op/I_ext": rng.standard_normal((steps, n))}, 0.05, steps)
    want = compile_model(SEED, coupling=SEED_COUPLING, vector_params=("li_op/tau",)).run(*args)
    for threads in (1, 3):
        assert_same(mod.run(*args, threads=threads, chunk_steps=32), want, ["li_op/v"])
