"""Spiking networks of the shipped templates against independent references: hand-written NumPy
loops with the same semantics (spike detected on the state the previous step left, spike train
H/dt, reset after the step), the LIF's closed-form f-I curve, and the QIF mean field of
Montbrió, Pazó & Roxin (2015)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from modelc.runtime.compiler import compile_model

SPIKING = "neuron_model_templates.spiking_neurons"


def _network(template: str, op: str, vector=()):
    """The template as a population coupled by weights: op/s_in = weights @ op/s."""
    return compile_model(f"{SPIKING}.{template}", coupling=dict(source_var=f"{op}/s", target_var=f"{op}/s_in"),
                         vector_params=[f"{op}/{name}" for name in vector])


def _spikes(module, op, y0, params, inputs, dt, steps):
    """The (steps, N) spike raster of a run (the event's record: its count in each step)."""
    out = module.run(y0, params, inputs, dt=dt, steps=steps, record=[f"{op}/spike"])
    return out[f"{op}/spike"].astype(bool)


def _weights(rng, n, scale):
    return rng.normal(0.0, scale / math.sqrt(n), (n, n))


def test_qif_network_spike_times_equal_a_hand_loop():
    rng = np.random.default_rng(1)
    n, dt, steps = 100, 1e-3, 3000
    W, eta, I_ext = _weights(rng, n, 2.0), rng.uniform(-2.0, 3.0, n), 4.0
    v0 = rng.uniform(-3.0, 3.0, n)
    module = _network("qif.qif", "qif_op", vector=["eta"])
    raster = _spikes(module, "qif_op", {"qif_op/v": v0}, {"weights": W, "qif_op/eta": eta},
                     {"qif_op/I_ext": I_ext}, dt, steps)

    v, s, expected = v0.copy(), np.zeros(n), np.zeros((steps, n), bool)
    for step in range(steps):
        fired = v > 100.0
        spike = fired / dt
        v_new = v + dt * ((v ** 2 + eta + I_ext) / 1.0 + 1.0 * (W @ s))
        s_new = s + dt * (-s / 1.0 + spike)
        v_new[fired] = -100.0
        v, s, expected[step] = v_new, s_new, fired
    assert expected.sum() > 150  # the comparison is about many spikes
    np.testing.assert_array_equal(raster, expected)


def test_lif_network_with_refractory_time_spike_times_equal_a_hand_loop():
    rng = np.random.default_rng(2)
    n, dt, steps, t_ref = 100, 0.01, 4000, 0.05  # the refractory time holds v for 5 steps
    W, I_ext = _weights(rng, n, 1.0), rng.uniform(0.09, 0.2, n)
    module = _network("lif.lif", "lif_op")
    raster = _spikes(module, "lif_op", {}, {"weights": W, "lif_op/t_ref": t_ref},
                     {"lif_op/I_ext": np.broadcast_to(I_ext, (steps, n))}, dt, steps)

    v, s, clock = np.zeros(n), np.zeros(n), np.zeros(n)
    expected = np.zeros((steps, n), bool)
    for step in range(steps):
        held = clock > dt / 2
        fired = (v > 1.0) & ~held
        spike = fired / dt
        v_new = v + dt * (-v / 10.0 + I_ext + 0.0 + 1.0 * (W @ s))
        s_new = s + dt * (-s / 0.5 + spike)
        clock_new = clock - dt
        v_new[fired | held] = 0.0
        clock_new[fired] = t_ref
        v, s, clock, expected[step] = v_new, s_new, clock_new, fired
    assert expected.sum() > 200
    np.testing.assert_array_equal(raster, expected)
    # no unit spikes again within 6 steps (the spike's own step and the 5 held ones)
    gaps = [np.diff(np.flatnonzero(expected[:, i])) for i in range(n)]
    assert min(g.min() for g in gaps if len(g)) >= 6


def test_izhikevich_network_spike_times_equal_a_hand_loop():
    rng = np.random.default_rng(3)
    n, dt, steps = 100, 0.05, 4000
    W, I_ext = np.abs(_weights(rng, n, 1.0)), rng.uniform(60.0, 300.0, n)
    module = _network("ik.ik", "ik_op")
    raster = _spikes(module, "ik_op", {}, {"weights": W}, {"ik_op/I_ext": np.broadcast_to(I_ext, (steps, n))},
                     dt, steps)

    C, k, v_r, v_t, g, E_r, b, tau_u, kappa, tau_s = 100.0, 0.7, -60.0, -40.0, 1.0, 0.0, -2.0, 33.33, 10.0, 6.0
    v, u, s = np.full(n, -60.0), np.zeros(n), np.zeros(n)
    expected = np.zeros((steps, n), bool)
    for step in range(steps):
        fired = v > 35.0
        spike = fired / dt
        s_in = W @ s
        v_new = v + dt * (k * (v - v_r) * (v - v_t) - u + I_ext + g * s_in * (E_r - v)) / C
        u_new = u + dt * ((b * (v - v_r) - u) / tau_u + kappa * spike)
        s_new = s + dt * (-s / tau_s + spike)
        v_new[fired] = -50.0
        v, u, s, expected[step] = v_new, u_new, s_new, fired
    assert expected.sum() > 200
    np.testing.assert_array_equal(raster, expected)


def test_heun_holds_the_spike_train_for_both_stages():
    """Multi-stage schemes: every stage reads the same H/dt, detected at the step's start."""
    rng = np.random.default_rng(4)
    n, dt, steps = 50, 1e-3, 3000
    W, v0 = _weights(rng, n, 2.0), rng.uniform(-3.0, 3.0, n)
    module = compile_model(f"{SPIKING}.qif.qif", method="heun",
                           coupling=dict(source_var="qif_op/s", target_var="qif_op/s_in"))
    raster = _spikes(module, "qif_op", {"qif_op/v": v0}, {"weights": W}, {"qif_op/I_ext": 6.0}, dt, steps)

    def f(v, s, spike):
        return (v ** 2 - 5.0 + 6.0) + W @ s, -s + spike

    v, s, expected = v0.copy(), np.zeros(n), np.zeros((steps, n), bool)
    for step in range(steps):
        fired = v > 100.0
        spike = fired / dt
        dv1, ds1 = f(v, s, spike)
        dv2, ds2 = f(v + dt * dv1, s + dt * ds1, spike)
        v_new, s_new = v + dt * (0.5 * dv1 + 0.5 * dv2), s + dt * (0.5 * ds1 + 0.5 * ds2)
        v_new[fired] = -100.0
        v, s, expected[step] = v_new, s_new, fired
    assert expected.sum() > 30
    np.testing.assert_array_equal(raster, expected)


@pytest.mark.parametrize("current", [0.12, 0.15, 0.3, 1.0])
def test_lif_rate_follows_the_closed_form_f_i_curve(current):
    """ISI = tau*ln((tau*I - v_r)/(tau*I - v_th)) (unit capacitance: the resistance is tau)."""
    dt, steps, tau = 2e-3, 100_000, 10.0
    module = compile_model(f"{SPIKING}.lif.lif")
    out = module.run({}, None, {"lif_op/I_ext": current}, dt=dt, steps=steps, record=["lif_op/spike"])
    times = np.flatnonzero(out["lif_op/spike"][:, 0]) * dt
    measured = np.diff(times[1:]).mean()  # from the first reset on
    expected = tau * math.log((tau * current - 0.0) / (tau * current - 1.0))
    assert len(times) >= 10
    assert measured == pytest.approx(expected, rel=0.01)
    print(f"LIF ISI at I = {current}: {measured:.5f}, closed form {expected:.5f}")


def _lorentzian(center, width, n):
    """n deterministic samples of a Lorentzian (Cauchy) distribution: its quantiles."""
    return center + width * np.tan(0.5 * np.pi * (2 * np.arange(1, n + 1) - n - 1) / (n + 1))


ALL_TO_ALL = """
qif_mean:
  base: neuron_model_templates.spiking_neurons.qif.qif_op
  equations:
    replace: {s_in: J*mean(s)}
  variables:
    J: 1.0
"""


def test_qif_network_rate_matches_the_mean_field_model(tmp_path):
    """N = 10 000 all-to-all QIF neurons (J * mean(s)) with Lorentzian excitabilities against the
    fixed point of the shipped mean field (Montbrió, Pazó & Roxin 2015). The trace s (tau_s = 1)
    equals the rate at a fixed point, so the network's steady rate is the mean field's."""
    eta, delta, J, n, dt = 1.0, 1.0, 5.0, 10_000, 2e-3
    mean_field = compile_model("model_templates.neural_mass_models.qif.qif")
    params = {**mean_field.default_params(), "qif_op/eta": eta, "qif_op/Delta": delta, "qif_op/J": J}
    fixed = mean_field.run(mean_field.initial_state(1), params, None, dt=1e-3, steps=40_000, record=["qif_op/r"])
    rate = float(fixed["qif_op/r"][-1, 0])
    assert abs(fixed["qif_op/r"][-1000:, 0] - rate).max() < 1e-6 * rate  # a fixed point

    (tmp_path / "all_to_all.yaml").write_text(ALL_TO_ALL)
    network = compile_model(f"{tmp_path / 'all_to_all.yaml'}:qif_mean", vector_params=["qif_mean/eta"])
    steps, window = 7_500, 2_500  # T = 15: transients over by T = 10, rate over the last 5
    out = network.run({"qif_mean/v": np.zeros(n)}, {"qif_mean/eta": _lorentzian(eta, delta, n), "qif_mean/J": J},
                      None, dt=dt, steps=steps, sampling_steps=window, record=["qif_mean/spike"])
    measured = out["qif_mean/spike"][-2:].sum() / (2 * window * dt * n)
    assert measured == pytest.approx(rate, rel=0.05)
    print(f"QIF network rate {measured:.5f}, mean field {rate:.5f}")


# RectiPy's QIF operator with no event of its own (its reset lives in add_diffeq_node), and
# RectiPy's intrinsic-reset variant: the spike train itself mirrors v (-2*spike*v, one Euler step).
NO_EVENT = """
qif_plain:
  base: OperatorTemplate
  equations: ["v' = (v^2 + eta + I_ext)/tau + k*s_in", "s' = -s/tau_s + spike"]
  variables: {v: variable(-2.0), s: output(0.0), tau: 1.0, k: 1.0, tau_s: 1.0, eta: -5.0,
              I_ext: input(0.0), s_in: input(0.0), spike: input(0.0)}
qif_mirror:
  base: OperatorTemplate
  equations: ["v' = (v^2 + eta + I_ext)/tau - 2*spike*v"]
  variables: {v: variable(-2.0), tau: 1.0, eta: -5.0, I_ext: input(0.0), spike: input(0.0)}
"""


def _qif_loop(W, eta, I_ext, v0, dt, steps, peak, reset):
    v, s, raster = v0.copy(), np.zeros(len(v0)), np.zeros((steps, len(v0)), bool)
    for step in range(steps):
        fired = v >= peak  # add_diffeq_node's default spike_center=1: v == threshold spikes
        v_new = v + dt * ((v ** 2 + eta + I_ext) + W @ s)
        s_new = s + dt * (-s + fired / dt)
        v_new[fired] = reset
        v, s, raster[step] = v_new, s_new, fired
    return raster


@pytest.mark.parametrize("template", ["plain", "shipped"])
def test_network_spike_options_add_the_event_rectipy_s_way(tmp_path, template):
    """spike_var/reset_var on a template without an event, and on the shipped qif (whose own
    event they replace): the same raster as a hand loop, read back with obs.spikes."""
    from modelc import Network
    (tmp_path / "plain.yaml").write_text(NO_EVENT)
    node = f"{tmp_path / 'plain.yaml'}:qif_plain" if template == "plain" else f"{SPIKING}.qif.qif"
    op = "qif_plain" if template == "plain" else "qif_op"
    rng = np.random.default_rng(5)
    n, dt, steps = 60, 1e-3, 3000
    W, eta, v0 = _weights(rng, n, 2.0), rng.uniform(0.0, 6.0, n), rng.uniform(-3.0, 3.0, n)
    net = Network(dt=dt)
    net.add_diffeq_node("qif", node, f"{op}/I_ext", f"{op}/s", weights=W, source_var=f"{op}/s",
                        target_var=f"{op}/s_in", node_vars={f"{op}/eta": eta, f"{op}/v": v0},
                        spike_var=f"{op}/spike", reset_var=f"{op}/v", spike_threshold=50.0, spike_reset=-50.0)
    obs = net.run(inputs=np.ones((steps, n)), record_vars=[("qif", "spike")])
    expected = _qif_loop(W, eta, 1.0, v0, dt, steps, 50.0, -50.0)
    assert expected.sum() > 100
    np.testing.assert_array_equal(obs[("qif", "spike")].astype(bool), expected)
    times, units = obs.spikes("qif")
    rows, cols = np.nonzero(expected)
    np.testing.assert_allclose(times, (rows + 1) * dt)
    np.testing.assert_array_equal(units, cols)
    np.testing.assert_allclose(obs.firing_rate("qif", per_unit=True), expected.sum(0) / (steps * dt))
    np.testing.assert_allclose(obs.firing_rate("qif"), expected.mean(1) / dt)


def test_network_spiking_without_reset_and_surrogate_settings_per_node(tmp_path):
    """reset=False: the event only emits (the equations reset: -2*spike*v mirrors v in one Euler
    step); each node keeps its own surrogate settings."""
    from modelc import Network
    (tmp_path / "plain.yaml").write_text(NO_EVENT)
    net = Network(dt=1e-3)
    net.add_diffeq_node("a", f"{tmp_path / 'plain.yaml'}:qif_mirror", "qif_mirror/I_ext", "qif_mirror/v", N=1,
                        spike_var="qif_mirror/spike", reset_var="qif_mirror/v", spike_threshold=30.0, reset=False,
                        spike_slope=5.0)
    net.add_diffeq_node("b", f"{SPIKING}.qif.qif", N=2, spike_var=["qif_op/spike"], reset_var=["qif_op/v"],
                        spike_threshold=[40.0], spike_reset=[-40.0], spike_center=0)
    net.add_edge("a", "b", np.ones((2, 1)), target_var="qif_op/I_ext")
    assert net.get_node("a").spiking.slopes == (5.0,) and net.get_node("b").spiking.slopes == (100.0 / 80.0,)
    assert net.get_node("b").spiking.center == 0.0
    obs = net.run(inputs=np.full((3000, 1), 10.0), record_output=False,
                  record_vars=[("a", "qif_mirror/v"), ("a", "spike")])
    v, spikes = obs[("a", "qif_mirror/v")][:, 0], obs[("a", "spike")][:, 0]
    (first, *_) = np.flatnonzero(spikes)
    assert v[first - 1] >= 30.0 and v[first] == pytest.approx(-v[first - 1] + 1e-3 * (v[first - 1] ** 2 + 5.0),
                                                              rel=1e-12)


@pytest.mark.parametrize("options, message", [
    (dict(spike_var="qif_op/spike"), "spike_var needs reset_var"),
    (dict(spike_var=["qif_op/spike"], reset_var=["qif_op/v", "qif_op/s"]), "1 spike_var but 2 reset_var"),
    (dict(spike_var="qif_op/spike", reset_var="qif_op/v", spike_center=0.5), "spike_center must be 0 or 1"),
    (dict(spike_var="qif_op/spike", reset_var="qif_op/v", spike_threshold=[1.0, 2.0]),
     "spike_threshold has 2 values for 1 spike_var"),
    (dict(spike_slope=2.0), "spike_slope is a setting of spiking nodes"),
])
def test_bad_spiking_options_are_clear_errors(options, message):
    from modelc import Network
    from modelc.errors import SpikeOptionError
    with pytest.raises(SpikeOptionError, match=message):
        Network(dt=1e-3).add_diffeq_node("q", f"{SPIKING}.qif.qif", N=2, **options)


# --- surrogate gradients ------------------------------------------------------------------------

def test_surrogate_gradients_equal_a_hand_written_reverse_loop():
    """A coupled LIF network, weights and per-unit eta trained: the generated backward pass against
    BPTT written by hand with RectiPy's rules (fired differentiated as a fast sigmoid of v - v_th,
    slope 1 by default; the reset mask held fixed)."""
    rng = np.random.default_rng(6)
    n, dt, steps = 8, 0.05, 1500
    W, eta, I_ext = _weights(rng, n, 1.0), rng.uniform(0.09, 0.2, n), 0.02
    module = compile_model(f"{SPIKING}.lif.lif", coupling=dict(source_var="lif_op/s", target_var="lif_op/s_in"),
                           vector_params=["lif_op/eta"], trainable=["weights", "lif_op/eta"])
    y0 = {"lif_op/v": rng.uniform(0.0, 1.0, n), "lif_op/s": np.zeros(n), "lif_op/spike_refractory": np.zeros(n)}
    cot_v, cot_s = rng.normal(size=(steps, n)), rng.normal(size=(steps, n))
    params = {"weights": W, "lif_op/eta": eta}
    grads = module.grad(y0, params, {"lif_op/I_ext": I_ext}, dt=dt, steps=steps,
                        cotangents={"lif_op/v": cot_v, "lif_op/s": cot_s})

    tau, tau_s, v_th = 10.0, 0.5, 1.0
    v, s, trajectory = y0["lif_op/v"].copy(), np.zeros(n), []
    for step in range(steps):
        fired = v > v_th
        trajectory.append((v.copy(), s.copy(), fired))
        v_new = v + dt * (-v / tau + I_ext + eta + W @ s)
        s = s + dt * (-s / tau_s + fired / dt)
        v_new[fired] = 0.0
        v = v_new
    lam_v, lam_s, lam_eta, lam_W = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros((n, n))
    for step in range(steps - 1, -1, -1):
        v, s, fired = trajectory[step]
        lam_v_new = (lam_v + cot_v[step]) * ~fired  # the reset value is a constant
        lam_s_new = lam_s + cot_s[step]
        lam_eta += dt * lam_v_new
        lam_W += dt * np.outer(lam_v_new, s)
        lam_v = (1 - dt / tau) * lam_v_new + lam_s_new / (1 + np.abs(v - v_th)) ** 2  # dt * (1/dt) d fired/dv
        lam_s = (1 - dt / tau_s) * lam_s_new + dt * W.T @ lam_v_new
    assert sum(f.sum() for _, _, f in trajectory) > 50
    np.testing.assert_allclose(grads["params"]["lif_op/eta"], lam_eta, rtol=1e-9)
    np.testing.assert_allclose(grads["params"]["weights"], lam_W, rtol=1e-9, atol=1e-12 * np.abs(lam_W).max())
    np.testing.assert_allclose(grads["y0"]["lif_op/v"], lam_v, rtol=1e-9)


def test_a_spiking_network_learns_target_rates():
    """fit_bptt through the surrogate gradient: LIF neurons start silent (tau*eta < v_th) and learn
    their excitabilities until their traces s = tau_s * rate match the targets (loss down >= 10x)."""
    from modelc import Network
    n, dt, steps = 10, 0.1, 1000
    target = np.linspace(2.0, 6.0, n)  # rates 0.1 .. 0.3 per unit of time
    net = Network(dt=dt)
    net.add_diffeq_node("lif", f"{SPIKING}.lif.lif", "lif_op/I_ext", "lif_op/s", N=n,
                        node_vars={"lif_op/eta": np.full(n, 0.05), "lif_op/tau_s": 20.0, "lif_op/s": target,
                                   "lif_op/t_ref": 0.5}, train_params=["lif_op/eta"])
    obs = net.fit_bptt([np.zeros((steps, n))], [np.broadcast_to(target, (steps, n))], optimizer="adam", lr=0.02,
                       epochs=40)
    losses = obs["epoch_loss"]
    assert losses[0] > 10 * min(losses)
    rates = net.get_var("lif", "lif_op/eta")
    assert np.all(np.diff(rates) > 0)  # higher targets need more drive


TWO_OPERATORS = """
a_op:
  base: OperatorTemplate
  equations: ["x' = I + 0*spike_a"]
  variables: {x: variable(0.0), I: 3.0, spike_a: input(0.0)}
b_op:
  base: OperatorTemplate
  equations: ["y' = J + 0*spike_b"]
  variables: {y: output(0.0), J: 5.0, spike_b: input(0.0)}
pair:
  base: NodeTemplate
  operators: [a_op, b_op]
"""


def test_several_spike_reset_pairs_and_spikes_of_a_sweep(tmp_path):
    """Lists of spike_var/reset_var: one event per pair, each on its own operator; a sweep's spikes
    come with their batch index."""
    from modelc import Network
    (tmp_path / "pair.yaml").write_text(TWO_OPERATORS)
    net = Network(dt=0.01)
    net.add_diffeq_node("p", f"{tmp_path / 'pair.yaml'}:pair", None, "b_op/y", N=2,
                        spike_var=["a_op/spike_a", "b_op/spike_b"], reset_var=["a_op/x", "b_op/y"],
                        spike_threshold=[1.0, 1.0], spike_reset=[0.0, 0.0])
    obs = net.run(steps=1000, record_output=False, record_vars=[("p", "spike_a"), ("p", "spike_b")])
    # x climbs 0.03 per step: >= 1 after step 33 (0.99 + 0.03), spikes in step 34, reset after it
    assert np.flatnonzero(obs[("p", "spike_a")][:, 0]).tolist()[:2] == [34, 69]
    assert obs[("p", "spike_b")].sum() > obs[("p", "spike_a")].sum() > 0
    sweep = net.sweep({"p/a_op/I": [3.0, 6.0]}, steps=1000, record_output=False, record_vars=[("p", "spike_a")])
    times, units = sweep.spikes(("p", "spike_a"))
    assert units.shape == (len(times), 2) and set(units[:, 0]) == {0, 1}  # (batch index, unit)
    assert (units[:, 0] == 1).sum() > (units[:, 0] == 0).sum()  # the faster set spikes more
