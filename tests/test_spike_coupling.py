"""Couplings driven by spikes (plan.SpikeDriven): run() computes W @ x from the weights out of the
units that fired instead of the dense product, for a spike train itself (delta synapses) and for
a synaptic trace s' = -s/tau_s + spike carried from step to step. Checked against hand-written
loops with the dense product: spike rasters exactly equal, states to rounding; grad() (which
recomputes each step with the dense product) against a hand-written reverse loop."""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from modelc.codegen.plan import make_plan
from modelc.codegen.schemes import get_scheme
from modelc.ir import Connection, build_system
from modelc.runtime.compiler import compile_model, compile_source
from modelc.spec import load

SPIKING = "neuron_model_templates.spiking_neurons"

# Leaky neurons with delta synapses: each spike of unit j moves v_i by k*W_ij at once.
DELTA = """
delta_op:
  base: OperatorTemplate
  equations: "v' = -v/tau + I_ext + k*s_in"
  variables:
    v: output(0.0)
    tau: 2.0
    k: 0.5
    v_th: 1.0
    I_ext: input(0.0)
    s_in: input(0.0)
    spike: input(0.0)
  events:
    spike: {when: "v > v_th", reset: ["v = 0"], emit: spike}
delta:
  base: NodeTemplate
  operators: [delta_op]
"""


def _delta(tmp_path, method="euler", **options):
    path = tmp_path / "delta.yaml"
    path.write_text(textwrap.dedent(DELTA))
    coupling = dict(source_var="delta_op/spike", target_var="delta_op/s_in")
    return f"{path}:delta", coupling, compile_model(f"{path}:delta", method=method, coupling=coupling, **options)


def _qif():
    return compile_model(f"{SPIKING}.qif.qif", coupling=dict(source_var="qif_op/s", target_var="qif_op/s_in"),
                         vector_params=["qif_op/eta"])


def _weights(rng, n, scale):
    return rng.normal(0.0, scale / math.sqrt(n), (n, n))


def _spike_driven(template, coupling, method="euler"):
    system = build_system(load(template), [Connection(coupling["source_var"], coupling["target_var"], "weights")])
    return [c.spikes for c in make_plan(system, get_scheme(method)).couplings]


def test_the_plan_marks_spike_trains_and_synaptic_traces(tmp_path):
    template, coupling, _ = _delta(tmp_path)
    (delta,) = _spike_driven(template, coupling)
    assert delta.train == "delta_op/spike" and delta.decay is None
    (trace,) = _spike_driven(f"{SPIKING}.qif.qif", dict(source_var="qif_op/s", target_var="qif_op/s_in"))
    assert trace.train == "qif_op/spike" and str(trace.decay) == "-dt/qif_op/tau_s + 1" and str(trace.gain) == "dt"
    # a trace with a free input (lif: s' = -s/tau_s + spike + s_ext) or in a multi-stage scheme is
    # not carried: its product stays dense
    assert _spike_driven(f"{SPIKING}.lif.lif", dict(source_var="lif_op/s", target_var="lif_op/s_in")) == [None]
    assert _spike_driven(f"{SPIKING}.qif.qif", dict(source_var="qif_op/s", target_var="qif_op/s_in"),
                         "heun") == [None]
    # a continuous source is no spike train
    assert _spike_driven(f"{SPIKING}.qif.qif", dict(source_var="qif_op/v", target_var="qif_op/s_in")) == [None]


def test_run_prints_the_spike_product_and_grad_the_dense_one():
    source = compile_source(f"{SPIKING}.qif.qif", coupling=dict(source_var="qif_op/s", target_var="qif_op/s_in"),
                            trainable=["weights"])
    run, grad = source.split("\ndef grad(")[0], source.split("\ndef grad(")[1]
    assert "spikes_acc_0(spike, out=acc_0, factor=dt, add=True)" in run
    assert "spikes_" not in grad


def _qif_loop(W, eta, I_ext, v0, dt, steps):
    """The shipped QIF (tau = tau_s = k = 1, peak 100, reset -100) with the dense W @ s, batched."""
    v, s = v0.copy(), np.zeros_like(v0)
    raster, vs = np.zeros((steps,) + v0.shape, bool), np.zeros((steps,) + v0.shape)
    for step in range(steps):
        fired = v > 100.0
        v_new = v + dt * (v ** 2 + eta + I_ext + s @ W.T)
        s = s + dt * (-s + fired / dt)
        v_new[fired] = -100.0
        v, raster[step], vs[step] = v_new, fired, v_new
    return raster, vs


def test_qif_network_with_a_carried_trace_equals_the_dense_hand_loop():
    """Batch of 2 (different excitabilities per member: different units fire), run in two parts
    (the second part's first step computes the product in full again)."""
    rng = np.random.default_rng(11)
    n, dt, steps = 120, 1e-3, 1500
    W, I_ext = _weights(rng, n, 3.0), 4.0
    eta = np.stack([rng.uniform(-2.0, 3.0, n), rng.uniform(-1.0, 1.0, n)])
    v0 = rng.uniform(-3.0, 3.0, (2, n))
    expected, v_expected = _qif_loop(W, eta, I_ext, v0, dt, steps)
    module = _qif()
    params = {"weights": W, "qif_op/eta": eta}
    first = module.run({"qif_op/v": v0}, params, {"qif_op/I_ext": I_ext}, dt=dt, steps=steps // 2,
                       record=["qif_op/spike", "qif_op/v"])
    second = module.run(first["final"], params, {"qif_op/I_ext": I_ext}, dt=dt, steps=steps - steps // 2,
                        record=["qif_op/spike", "qif_op/v"])
    raster = np.concatenate([first["qif_op/spike"], second["qif_op/spike"]]).astype(bool)
    assert expected[:, 0].sum() > 100 and expected[:, 1].sum() > 100
    assert (expected[:, 0] != expected[:, 1]).any()
    np.testing.assert_array_equal(raster, expected)
    v = np.concatenate([first["qif_op/v"], second["qif_op/v"]])
    np.testing.assert_allclose(v, v_expected, rtol=1e-9, atol=1e-9)


def _delta_loop(W, I_ext, v0, dt, steps, method, tau=2.0, k=0.5):
    """Delta synapses with the dense W @ spike; heun reads the same spike train in both stages."""
    v = v0.copy()
    raster, vs = np.zeros((steps,) + v0.shape, bool), np.zeros((steps,) + v0.shape)
    for step in range(steps):
        fired = v > 1.0
        coupled = (fired / dt) @ W.T

        def f(x):
            return -x / tau + I_ext + k * coupled
        k1 = f(v)
        v_new = v + dt * k1 if method == "euler" else v + dt / 2 * (k1 + f(v + dt * k1))
        v_new[fired] = 0.0
        v, raster[step], vs[step] = v_new, fired, v_new
    return raster, vs


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_delta_synapses_equal_the_dense_hand_loop(tmp_path, method):
    """Batch of 3; step 0 fires most units at once (the dense branch), later steps a few."""
    rng = np.random.default_rng(12)
    n, dt, steps = 80, 0.01, 1500
    W, I_ext = _weights(rng, n, 0.05), rng.uniform(0.45, 0.7, (3, n))
    v0 = rng.uniform(0.0, 1.0, (3, n))
    v0[:, : 3 * n // 4] += 1.0  # above the threshold: they fire in the first step
    expected, v_expected = _delta_loop(W, I_ext, v0, dt, steps, method)
    *_, module = _delta(tmp_path, method)
    out = module.run({"delta_op/v": v0}, {"weights": W}, {"delta_op/I_ext": np.broadcast_to(I_ext, (steps, 3, n))},
                     dt=dt, steps=steps, record=["delta_op/spike", "delta_op/v"])
    assert expected[0].mean() > 0.7 and expected[1:].sum() > 500
    np.testing.assert_array_equal(out["delta_op/spike"].astype(bool), expected)
    np.testing.assert_allclose(out["delta_op/v"], v_expected, rtol=1e-9, atol=1e-12)


def test_an_unbatched_delta_network_equals_the_dense_hand_loop(tmp_path):
    rng = np.random.default_rng(13)
    n, dt, steps = 50, 0.01, 1500
    W, I_ext, v0 = _weights(rng, n, 0.05), rng.uniform(0.6, 0.9, n), rng.uniform(0.0, 1.0, n)
    expected, v_expected = _delta_loop(W, I_ext, v0, dt, steps, "euler")
    *_, module = _delta(tmp_path)
    out = module.run({"delta_op/v": v0}, {"weights": W}, {"delta_op/I_ext": np.broadcast_to(I_ext, (steps, n))},
                     dt=dt, steps=steps, record=["delta_op/spike", "delta_op/v"])
    assert expected.sum() > 200
    np.testing.assert_array_equal(out["delta_op/spike"].astype(bool), expected)
    np.testing.assert_allclose(out["delta_op/v"], v_expected, rtol=1e-9, atol=1e-12)


def test_gradients_of_a_carried_trace_equal_a_hand_written_reverse_loop():
    """QIF network, weights and eta trained: grad() against BPTT by hand (fired differentiated as
    the fast sigmoid of v - v_peak, slope 1; the reset mask held fixed); run() of the same module
    (spike-driven) fires as the hand loop does."""
    rng = np.random.default_rng(14)
    n, dt, steps = 10, 1e-3, 3000
    W, eta, I_ext = _weights(rng, n, 2.0), rng.uniform(4.0, 8.0, n), 1.0
    module = compile_model(f"{SPIKING}.qif.qif", coupling=dict(source_var="qif_op/s", target_var="qif_op/s_in"),
                           vector_params=["qif_op/eta"], trainable=["weights", "qif_op/eta"])
    v0 = rng.uniform(-3.0, 3.0, n)
    y0, params = {"qif_op/v": v0, "qif_op/s": np.zeros(n)}, {"weights": W, "qif_op/eta": eta}
    cot_v, cot_s = rng.normal(size=(steps, n)) * 1e-3, rng.normal(size=(steps, n))
    grads = module.grad(y0, params, {"qif_op/I_ext": I_ext}, dt=dt, steps=steps,
                        cotangents={"qif_op/v": cot_v, "qif_op/s": cot_s})
    raster = module.run(y0, params, {"qif_op/I_ext": I_ext}, dt=dt, steps=steps, record=["qif_op/spike"])

    v, s, trajectory = v0.copy(), np.zeros(n), []
    for step in range(steps):
        fired = v > 100.0
        trajectory.append((v.copy(), s.copy(), fired))
        v_new = v + dt * (v ** 2 + eta + I_ext + W @ s)
        s = s + dt * (-s + fired / dt)
        v_new[fired] = -100.0
        v = v_new
    np.testing.assert_array_equal(raster["qif_op/spike"].astype(bool), [f for _, _, f in trajectory])
    lam_v, lam_s, lam_eta, lam_W = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros((n, n))
    for step in range(steps - 1, -1, -1):
        v, s, fired = trajectory[step]
        lam_v_new = (lam_v + cot_v[step]) * ~fired
        lam_s_new = lam_s + cot_s[step]
        lam_eta += dt * lam_v_new
        lam_W += dt * np.outer(lam_v_new, s)
        lam_v = (1 + 2 * dt * v) * lam_v_new + lam_s_new / (1 + np.abs(v - 100.0)) ** 2
        lam_s = (1 - dt) * lam_s_new + dt * W.T @ lam_v_new
    assert sum(f.sum() for _, _, f in trajectory) > 20
    np.testing.assert_allclose(grads["params"]["qif_op/eta"], lam_eta, rtol=1e-8)
    np.testing.assert_allclose(grads["params"]["weights"], lam_W, rtol=1e-8, atol=1e-11 * np.abs(lam_W).max())
    np.testing.assert_allclose(grads["y0"]["qif_op/v"], lam_v, rtol=1e-8)
