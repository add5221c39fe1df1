"""The CuPy backend's events (docs/events.md) and white noise, tested on a CPU with tests/fake_cupy.py.

Events are masked updates inside the fused kernels: the check on the step's own states, the
spike train H/dt read by every stage, the resets after the update, the refractory clock and the
spike counts of each record row. Spike rasters must equal the NumPy backend's exactly, in every
strategy the sizes allow (the kernels do the NumPy backend's arithmetic in the same order).
"""
from __future__ import annotations

import numpy as np
import pytest

from generated import fake_cupy_installed
from modelc import compile_model
from modelc.errors import UnsupportedFeatureError

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
