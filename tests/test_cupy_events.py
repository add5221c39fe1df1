"""The CuPy backend's events (docs/events.md) and white noise, tested on a CPU with tests/fake_cupy.py.

Events are masked updates inside the fused kernels: the check on the step's own states, the
spike train H/dt read by every stage, the resets after the update, the refractory clock and the
spike counts of each record row. Spike rasters must equal the NumPy backend's exactly, in every
strategy the sizes allow (the kernels do the NumPy backend's arithmetic in the same order).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import fake_cupy
from generated import fake_cupy_installed
from modelc import compile_model
from modelc.codegen.cupy import kernel_sources
from modelc.errors import UnsupportedFeatureError
from modelc.ir import Connection, build_system
from modelc.spec import load

QIF = "neuron_model_templates.spiking_neurons.qif.qif"
LIF = "neuron_model_templates.spiking_neurons.lif.lif"


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    with fake_cupy_installed(tmp_path_factory.mktemp("cache")) as module:
        yield module


def _arguments(mn, B, n, steps, high, seed=0):
    rng = np.random.default_rng(seed)
    v = next(s for s in mn.STATES if s.endswith("/v"))
    current = next(i for i in mn.INPUTS if i.endswith("/I_ext"))
    return {v: rng.uniform(-2.0, 2.0, (B, n))}, {current: rng.uniform(0.0, high, (steps, B, n))}, rng


def _every_strategy(mc, mn, y0, params, inputs, dt, steps, record, expected, **kwargs):
    """Each strategy's run against the NumPy backend's: spike counts equal, states to rounding."""
    want = mn.run(y0, params, inputs, dt, steps, record=record, **kwargs)
    events = [name for name in record if name in mn.EVENTS]
    assert all(want[name].sum() > 10 for name in events), "the test needs spikes"
    ran = set()
    for strategy in mc.STRATEGIES:
        try:
            got = mc.run(y0, params, inputs, dt, steps, record=record, strategy=strategy, **kwargs)
        except ValueError as exc:
            assert "cannot run this model" in str(exc)
            continue
        ran.add(strategy)
        for name in record:
            if name in events:
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} [{strategy}]")
            else:
                np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-9, err_msg=f"{name} [{strategy}]")
        for name in mn.STATES:
            np.testing.assert_allclose(got["final"][name], want["final"][name], rtol=1e-9, atol=1e-9)
    assert ran == expected
    return want


def test_qif_network_spikes_equal_the_numpy_backend_in_every_strategy(fake):
    coupling = dict(source_var="qif_op/s", target_var="qif_op/s_in")
    mn = compile_model(QIF, method="euler", coupling=coupling)
    mc = compile_model(QIF, method="euler", backend="cupy", coupling=coupling)
    B, n, steps, dt = 2, 12, 240, 1e-2
    y0, inputs, rng = _arguments(mn, B, n, steps, 30.0)
    params = {"weights": 3.0 * rng.standard_normal((n, n)) / np.sqrt(n)}
    record = ["qif_op/v", "qif_op/s", "qif_op/spike"]
    # chunks of 7 steps, rows of 3: a row's count goes on from one chunk (launch) to the next
    _every_strategy(mc, mn, y0, params, inputs, dt, steps, record, {"persistent", "graph", "stream"},
                    sampling_steps=3, chunk_steps=7)


@pytest.mark.parametrize("method", ["heun", "rk4"])
def test_lif_refractory_clock_and_held_resets_in_every_strategy(fake, method):
    """The refractory clock, the held resets and the spike train read by every stage (heun, rk4);
    without couplings the fused kernel runs too."""
    mn = compile_model(LIF, method=method)
    mc = compile_model(LIF, method=method, backend="cupy")
    B, n, steps, dt = 2, 5, 200, 0.1
    y0, inputs, _ = _arguments(mn, B, n, steps, 0.3)
    params = {"lif_op/t_ref": 0.5}
    record = mn.OUTPUTS
    want = _every_strategy(mc, mn, y0, params, inputs, dt, steps, record, {"fused", "graph", "stream"},
                           sampling_steps=4, chunk_steps=6)
    assert (want["lif_op/spike_refractory"] > 0).any()


def test_a_coupling_of_the_spike_train_itself(fake):
    """W @ spike: the coupling's argument is the spike train (next step's, in the graph strategy's
    last kernel: checked on the new states)."""
    coupling = dict(source_var="qif_op/spike", target_var="qif_op/s_in")
    mn = compile_model(QIF, method="heun", coupling=coupling)
    mc = compile_model(QIF, method="heun", backend="cupy", coupling=coupling)
    B, n, steps, dt = 1, 10, 240, 1e-2
    y0, inputs, rng = _arguments(mn, B, n, steps, 30.0, seed=2)
    params = {"weights": 0.05 * rng.standard_normal((n, n))}
    _every_strategy(mc, mn, y0, params, inputs, dt, steps, ["qif_op/v", "qif_op/spike"],
                    {"persistent", "graph", "stream"}, sampling_steps=1, chunk_steps=5)


def test_a_run_in_two_parts_counts_as_one(fake):
    mc = compile_model(LIF, method="euler", backend="cupy")
    mn = compile_model(LIF, method="euler")
    y0, inputs, _ = _arguments(mn, 3, 4, 120, 0.5, seed=5)
    params = {"lif_op/t_ref": 0.3}
    one = mc.run(y0, params, inputs, 0.1, 120, record=["lif_op/spike"], sampling_steps=6)
    first = mc.run(y0, params, {k: v[:60] for k, v in inputs.items()}, 0.1, 60, record=["lif_op/spike"],
                   sampling_steps=6)
    second = mc.run(first["final"], params, {k: v[60:] for k, v in inputs.items()}, 0.1, 60, t0=6.0,
                    record=["lif_op/spike"], sampling_steps=6)
    np.testing.assert_array_equal(np.concatenate([first["lif_op/spike"], second["lif_op/spike"]]),
                                  one["lif_op/spike"])
    assert one["lif_op/spike"].sum() > 10


def test_gradients_of_events_are_refused_by_name(fake):
    with pytest.raises(UnsupportedFeatureError, match=r"CuPy backend cannot translate .*events"):
        compile_model(LIF, method="euler", backend="cupy", trainable=["lif_op/tau"])


# --- white noise ------------------------------------------------------------------------------

NOISY = """\
ou_op:
  base: OperatorTemplate
  equations: "x' = -x/tau + sigma*xi"
  variables: {x: output(0.0), tau: 1.0, sigma: 0.5}
ou:
  base: NodeTemplate
  operators: [ou_op]
noisy_op:
  base: neuron_model_templates.rate_neurons.leaky_integrator.li_op
  equations: {replace: {eta: eta + sigma*xi + 0.3*v*tanh(r_in)*xi}}
  variables: {sigma: 0.4}
noisy:
  base: NodeTemplate
  operators: [noisy_op, neuron_model_templates.rate_neurons.leaky_integrator.tanh_op]
nlif_op:
  base: neuron_model_templates.spiking_neurons.lif.lif_op
  equations: {replace: {I_ext: I_ext + sigma*xi}}
  variables: {sigma: 0.3}
nlif:
  base: NodeTemplate
  operators: [nlif_op]
"""


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    path = tmp_path_factory.mktemp("noise") / "noisy.yaml"
    path.write_text(NOISY)
    return str(path)


@pytest.mark.parametrize("strategy", ["fused", "graph"])
def test_ou_stationary_variance_from_the_device_generators(fake, noisy, strategy):
    """Euler-Maruyama's OU process x_{n+1} = a x_n + sigma dW, a = 1 - dt/tau, has the stationary
    variance sigma^2 dt / (1 - a^2); 2000 units over 190 time constants hit it within 2%."""
    mc = compile_model(f"{noisy}:ou", method="euler", backend="cupy")
    dt, steps, tau, sigma = 0.05, 4000, 1.0, 0.5
    rec = mc.run({"ou_op/x": np.zeros((4, 500))}, None, None, dt, steps, sampling_steps=20, seed=3,
                 strategy=strategy)
    a = 1 - dt / tau
    want = sigma ** 2 * dt / (1 - a ** 2)
    got = rec["ou_op/x"][10:].var()
    assert abs(got / want - 1) < 0.02, (got, want)


def test_seeds_streams_per_member_and_bad_seeds(fake, noisy):
    mc = compile_model(f"{noisy}:ou", method="heun", backend="cupy")
    y0 = {"ou_op/x": np.zeros((2, 3))}

    def run(seed, y=y0):
        return mc.run(y, None, None, 0.01, 40, seed=seed, chunk_steps=16)
    first, again, other = run(5), run(5), run(6)
    np.testing.assert_array_equal(first["ou_op/x"], again["ou_op/x"])   # bit for bit
    assert not np.array_equal(first["ou_op/x"], other["ou_op/x"])
    assert not np.array_equal(first["ou_op/x"][:, 0], first["ou_op/x"][:, 1])   # a stream per member
    both = run([11, 12])
    for b, s in enumerate([11, 12]):   # member b of a batch with seeds [s0, s1] = a run of seed s_b
        np.testing.assert_array_equal(both["ou_op/x"][:, b], run(s, {"ou_op/x": np.zeros(3)})["ou_op/x"])
    assert len(first["rng"]) == 2
    for bad in (-1, 1.5, "x", [1, 2, 3]):
        with pytest.raises(ValueError, match="seed"):
            run(bad)


@pytest.mark.parametrize("method", ["euler", "heun"])
@pytest.mark.parametrize("coupled", [False, True])
def test_noise_with_numpys_normals_equals_the_numpy_backend(fake, noisy, method, coupled, monkeypatch):
    """The same standard normals (the NumPy backend's SFC64 streams, drawn by _normals) give the
    NumPy backend's trajectory: additive and multiplicative noise (g reads v and W @ tanh(v))."""
    coupling = dict(source_var="tanh_op/r", target_var="noisy_op/r_in") if coupled else None
    mc = compile_model(f"{noisy}:noisy", method=method, backend="cupy", coupling=coupling)
    mn = compile_model(f"{noisy}:noisy", method=method, coupling=coupling)
    B, n, steps, dt, seed = 3, 6, 50, 0.01, 7
    rng = np.random.default_rng(1)
    y0 = {"noisy_op/v": rng.standard_normal((B, n))}
    params = {"weights": rng.standard_normal((n, n))} if coupled else {}
    inputs = {"noisy_op/I_ext": rng.standard_normal((steps, B, n))}
    want = mn.run(y0, params, inputs, dt, steps, seed=seed, sampling_steps=2)
    if method == "heun":   # blocks of normals of 3 steps: shorter chunks (2 steps for graph and stream)
        monkeypatch.setattr(mc, "_NOISE_BYTES", B * n * 8 * 3)
    ran = set()
    for strategy in mc.STRATEGIES:
        monkeypatch.setattr(mc, "_normals", _numpys_normals(fake, seed, B))
        try:
            got = mc.run(y0, params, inputs, dt, steps, seed=seed, sampling_steps=2, strategy=strategy,
                         chunk_steps=8)
        except ValueError as exc:
            assert "cannot run this model" in str(exc)
            continue
        ran.add(strategy)
        np.testing.assert_allclose(got["noisy_op/v"], want["noisy_op/v"], rtol=1e-12, atol=1e-13)
        assert mc.LAST_RUN["chunk"] == (8 if method == "euler" else 3 if strategy in ("fused", "persistent") else 2)
    assert ran == ({"persistent", "graph", "stream"} if coupled else {"fused", "graph", "stream"})


def _numpys_normals(fake, seed, members):
    """A _normals that draws the NumPy backend's numbers: member b's SFC64 stream of seed."""
    streams = [np.random.Generator(np.random.SFC64(s)) for s in np.random.SeedSequence(seed).spawn(members)]
    return lambda generators, rows, units: fake.asarray(np.stack([s.standard_normal((rows, units)) for s in streams]))


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_noisy_lif_spikes_with_numpys_normals_equal_the_numpy_backend(fake, noisy, method, monkeypatch):
    mc = compile_model(f"{noisy}:nlif", method=method, backend="cupy")
    mn = compile_model(f"{noisy}:nlif", method=method)
    B, n, steps, dt = 2, 5, 300, 0.1
    y0, inputs, _ = _arguments(mn, B, n, steps, 0.3, seed=1)
    params = {"nlif_op/t_ref": 0.3}
    want = mn.run(y0, params, inputs, dt, steps, seed=7, record=mn.OUTPUTS, sampling_steps=2)
    assert want["nlif_op/spike"].sum() > 10
    for strategy in ("fused", "graph", "stream"):
        monkeypatch.setattr(mc, "_normals", _numpys_normals(fake, 7, B))
        got = mc.run(y0, params, inputs, dt, steps, seed=7, record=mn.OUTPUTS, sampling_steps=2, strategy=strategy)
        np.testing.assert_array_equal(got["nlif_op/spike"], want["nlif_op/spike"], err_msg=strategy)
        np.testing.assert_allclose(got["nlif_op/v"], want["nlif_op/v"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_event_and_noise_kernels_declare_only_what_they_use(tmp_path, noisy, method):
    """Each kernel compiles as C with -Wall -Werror: no spike train, flag or g*dW declared
    and not read (nvcc's -Werror all-warnings is as strict)."""
    systems = [build_system(load(QIF), [Connection("qif_op/spike", "qif_op/s_in", "weights")]),
               build_system(load(LIF)),
               build_system(load(f"{noisy}:noisy"), [Connection("tanh_op/r", "noisy_op/r_in", "weights")])]
    gcc = shutil.which(os.environ.get("CC", "gcc"))
    if gcc is None:
        pytest.skip("no C compiler")
    for k, system in enumerate(systems):
        for name, source in kernel_sources(system, method).items():
            path = tmp_path / f"{k}_{name}.c"
            path.write_text(fake_cupy.c_harness(source))
            result = subprocess.run([gcc, "-std=gnu11", "-fsyntax-only", "-Wall", "-Werror", "-Wno-unused-function",
                                     str(path)], capture_output=True, text=True)
            assert result.returncode == 0, f"{system.name} {name}:\n{result.stderr[-3000:]}"


def test_network_on_cuda_spikes_as_on_cpu(fake):
    """RectiPy's way (spike_var/reset_var options) through Network(device='cuda')."""
    from modelc import Network
    n = 20
    weights = np.random.default_rng(4).standard_normal((n, n))
    spikes = {}
    for device in ("cpu", "cuda"):
        net = Network(dt=1e-2, device=device)
        net.add_diffeq_node("qif", QIF, weights=weights, source_var="qif_op/s", target_var="qif_op/s_in",
                            input_var="qif_op/I_ext", output_var="qif_op/s", spike_var="qif_op/spike",
                            reset_var="qif_op/v", spike_threshold=100.0, spike_reset=-100.0)
        obs = net.run(inputs=np.full((300, n), 20.0), record_vars=[("qif", "spike")])
        spikes[device] = obs.spikes(("qif", "spike"))
    assert len(spikes["cpu"][0]) > 20
    for got, want in zip(spikes["cuda"], spikes["cpu"]):
        np.testing.assert_array_equal(got, want)
