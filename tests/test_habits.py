"""RectiPy's call habits (issue 14) and bad values that get a clear error at the call.

Numbers are compared with forward-Euler loops written here from the seed model's documented
equations (models/neuron_model_templates/rate_neurons/leaky_integrator.yaml):

    li_op:   v' = -v/tau + k*r_in + I_ext + eta        tanh_op: r = tanh(v)

with weights[i, j] from unit j to unit i. Step k uses input row k; a snapshot record row is
the value after step (k + 1) * sampling_steps, a "mean" row the mean of the values after each
step of its window.
"""
from __future__ import annotations

import numpy as np
import pytest

from modelc import FeedbackNetwork, Network, Observer, random_connectivity
from modelc.errors import InvalidValueError, ShapeError, UnknownMethodError, WiringError

TANH = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
TOL = dict(rtol=1e-10, atol=1e-10)


def euler_tanh(J, inputs, dt, tau=10.0):
    """Every step v += dt*(-v/tau + J@tanh(v) + I); the states after each step."""
    v = np.zeros(J.shape[0])
    out = np.empty((len(inputs), J.shape[0]))
    for step, current in enumerate(inputs):
        v = v + dt * (-v / tau + J @ np.tanh(v) + current)
        out[step] = v
    return out


def population(N=3, **kwargs):
    net = Network(dt=1e-2)
    net.add_diffeq_node("p", TANH, "li_op/I_ext", "li_op/v", N=N, **kwargs)
    return net


# --- RectiPy's call habits -------------------------------------------------------------------

def test_rectipys_positional_order_label_node_input_output_weights():
    rng = np.random.default_rng(0)
    J, u = rng.normal(0, 0.5, (4, 4)), rng.normal(size=(50, 4))
    net = Network(dt=1e-2)
    net.add_diffeq_node("rnn", TANH, "li_op/I_ext", "li_op/v", J, "tanh_op/r", "li_op/r_in")
    np.testing.assert_allclose(net.run(u)["out"], euler_tanh(J, u, 1e-2), **TOL)


def test_add_func_node_takes_rectipys_activation_function_keyword():
    net = Network(dt=1e-2)
    net.add_func_node("inp", 2, activation_function="tanh")
    u = np.linspace(-2, 2, 20).reshape(10, 2)
    np.testing.assert_allclose(net.run(u)["out"], np.tanh(u), **TOL)


def test_all_prefix_in_node_vars_keys_is_the_plain_name():
    u = np.ones((30, 3))
    with_all = population(node_vars={"all/li_op/tau": 2.0}).run(u)["out"]
    plain = population(node_vars={"li_op/tau": 2.0}).run(u)["out"]
    np.testing.assert_array_equal(with_all, plain)
    np.testing.assert_allclose(with_all, euler_tanh(np.zeros((3, 3)), u, 1e-2, tau=2.0), **TOL)


def test_inputs_of_one_column_are_broadcast_to_every_unit():
    u = np.sin(np.arange(40) / 5.0)[:, None]
    out = population(N=5).run(u)["out"]
    np.testing.assert_allclose(out, euler_tanh(np.zeros((5, 5)), np.repeat(u, 5, axis=1), 1e-2), **TOL)


def test_observer_steps_key_counts_the_steps_of_every_row():
    obs = population().run(np.ones((12, 3)), sampling_steps=4)
    np.testing.assert_array_equal(obs["steps"], [4, 8, 12])
    assert "steps" in obs


def test_sampling_mean_averages_each_window_and_snapshot_stays_the_default():
    rng = np.random.default_rng(1)
    J, u = rng.normal(0, 0.8, (3, 3)), rng.normal(size=(60, 3))
    net = Network(dt=1e-2)
    net.add_diffeq_node("rnn", TANH, "li_op/I_ext", "li_op/v", J, "tanh_op/r", "li_op/r_in")
    every_step = euler_tanh(J, u, 1e-2)
    snapshot = net.run(u, sampling_steps=5)["out"]
    net.reset()
    mean = net.run(u, sampling_steps=5, sampling="mean", record_vars=[("rnn", "li_op/v", True)])
    np.testing.assert_allclose(snapshot, every_step[4::5], **TOL)
    np.testing.assert_allclose(mean["out"], every_step.reshape(12, 5, 3).mean(axis=1), **TOL)
    np.testing.assert_allclose(mean[("rnn", "li_op/v", True)], every_step.reshape(12, 5, 3).mean(axis=(1, 2)),
                               **TOL)
    np.testing.assert_allclose(mean.times, np.arange(1, 13) * 5 * 1e-2)
    with pytest.raises(InvalidValueError, match="sampling must be one of"):
        net.run(u, sampling="average")


def test_rectipy_timing_differs_from_modelcs_as_the_readme_says():
    """RectiPy 0.12 records the output before each step and averages it over the window; modelc
    records the value after the step. The README's table gives the difference for this run."""
    net = population(N=1)
    u = np.ones((100, 1))
    after = net.run(u, sampling_steps=10)["out"][:, 0]
    v = euler_tanh(np.zeros((1, 1)), u, 1e-2)[:, 0]
    before = np.concatenate([[0.0], v[:-1]])  # the state each step starts from
    rectipy = before.reshape(10, 10).mean(axis=1)
    np.testing.assert_allclose(after, v[9::10], **TOL)
    assert (round(after[0], 4), round(rectipy[0], 4)) == (0.0996, 0.0449)  # the README's numbers
    assert after[-1] - rectipy[-1] == pytest.approx(0.0500, abs=5e-5)


def test_feedback_network_is_network():
    assert FeedbackNetwork is Network


def test_add_edge_without_weights_points_to_random_connectivity():
    net = population()
    net.add_func_node("out", 2)
    with pytest.raises(InvalidValueError, match=r"edge p -> out needs weights of shape .* \(2, 3\)") as info:
        net.add_edge("p", "out")
    assert "random_connectivity(2, 3, p)" in info.value.hint
    net.add_edge("p", "out", random_connectivity(2, 3, 0.5))  # what the hint says works


def test_no_node_free_of_outgoing_edges_says_to_pass_output_to_run():
    net = Network(dt=1e-2)
    net.add_diffeq_node("a", TANH, "li_op/I_ext", "li_op/v", N=2)
    net.add_diffeq_node("b", TANH, "li_op/r_in", "li_op/v", N=2)
    net.add_edge("a", "b", np.eye(2))
    net.add_edge("b", "a", np.eye(2), target_var="li_op/r_in")
    with pytest.raises(WiringError, match="no node is free of outgoing edges") as info:
        net.run({"a": np.ones((5, 2))})
    assert "output='label'" in info.value.hint
    assert net.run({"a": np.ones((5, 2))}, output="b")["out"].shape == (5, 2)


# --- bad values: a clear error at the call ---------------------------------------------------

def test_nan_or_inf_weights_are_refused_at_the_call_naming_node_or_edge():
    bad = np.eye(3)
    bad[1, 2] = np.nan
    with pytest.raises(InvalidValueError,
                       match=r"recurrent weights of node 'q' must be finite, got nan at index \(1, 2\)"):
        Network(dt=1e-2).add_diffeq_node("q", TANH, weights=bad, source_var="tanh_op/r", target_var="li_op/r_in")
    net = population()
    net.add_func_node("out", 3)
    with pytest.raises(InvalidValueError, match="weights of edge p -> out must be finite, got inf"):
        net.add_edge("p", "out", np.full((3, 3), np.inf))
    with pytest.raises(InvalidValueError, match="weights of edge p -> out must be finite"):
        net.add_edge("p", "out", float("nan"))
    with pytest.raises(InvalidValueError, match="value of 'li_op/tau' of node 'p' must be finite, got inf"):
        population(node_vars={"li_op/tau": np.inf})
    with pytest.raises(InvalidValueError, match="value of 'li_op/tau' of node 'x' must be finite, got nan at index 1"):
        net.add_diffeq_node("x", TANH, N=2, node_vars={"tau": np.array([1.0, np.nan])})
    rnn = Network(dt=1e-2)
    rnn.add_diffeq_node("q", TANH, weights=np.eye(3), source_var="tanh_op/r", target_var="li_op/r_in")
    with pytest.raises(InvalidValueError, match="recurrent weights of node 'q' must be finite"):
        rnn.set_var("q", "weights", bad)


@pytest.mark.parametrize("inputs, shown", [(np.full((5, 3), "x"), "<U1"), (np.ones((5, 3)) * (1 + 1j), "complex128"),
                                           ([["a", 1.0, 2.0]] * 5, "list")])
def test_text_or_complex_inputs_are_a_clear_error(inputs, shown):
    with pytest.raises(InvalidValueError, match=f"inputs of node 'p' must be an array of real numbers, got .*{shown}"):
        population().run(inputs)


def test_an_input_layer_left_out_of_the_inputs_dict_is_a_clear_error():
    net = Network(dt=1e-2)
    net.add_func_node("a", 2)
    net.add_func_node("b", 3)
    net.add_diffeq_node("c", TANH, "li_op/I_ext", "li_op/v", N=2)
    net.add_edge("a", "c", np.eye(2))
    net.add_edge("b", "c", np.ones((2, 3)))
    with pytest.raises(WiringError, match="input node 'b' gets no input") as info:
        net.run({"a": np.ones((5, 2))})
    assert "(T, 3)" in info.value.hint


def test_unknown_method_fails_at_add_diffeq_node():
    with pytest.raises(UnknownMethodError, match="rk45"):
        population(method="rk45")


def test_sampling_steps_that_do_not_divide_the_steps_warn_and_too_many_fail():
    net = population()
    with pytest.warns(UserWarning, match="sampling_steps=4 does not divide the 10 steps: the last 2 steps run"):
        obs = net.run(np.ones((10, 3)), sampling_steps=4)
    assert obs["out"].shape == (2, 3) and net.time == pytest.approx(0.1)
    with pytest.raises(InvalidValueError, match=r"sampling_steps \(11\) is larger than steps \(10\)"):
        net.run(np.ones((10, 3)), sampling_steps=11)
    with pytest.raises(InvalidValueError, match=r"sampling_steps \(11\) is larger than steps \(10\)"):
        net.run(np.ones((10, 3)), sampling_steps=11, sampling="mean")
    with pytest.raises(InvalidValueError, match="sampling_steps must be a whole number"):
        net.run(np.ones((10, 3)), sampling_steps=2.5, sampling="mean")


def test_observer_saves_where_asked_and_loads_what_was_saved(tmp_path):
    obs = population().run(np.ones((10, 3)), sampling_steps=5)
    path = obs.save(tmp_path / "x.pkl")
    assert path == tmp_path / "x.pkl" and [p.name for p in tmp_path.iterdir()] == ["x.pkl"]
    assert Observer.load(tmp_path / "x.pkl") == obs


def test_shape_errors_mention_the_one_column_form():
    with pytest.raises(ShapeError, match=r"\(T, 3\) or \(T,\) or \(T, 1\)"):
        population().run(np.ones((10, 2)))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's, from the generated code dividing by 0
def test_a_parameter_that_puts_an_equation_out_of_its_domain_is_named_not_dt():
    from modelc.errors import NonFiniteError
    net = population(node_vars={"li_op/tau": 0.0, "li_op/k": 0.0})
    with pytest.raises(NonFiniteError, match="derivative of state 'p/li_op/v' is not finite where the run starts, "
                                             "before any step") as info:
        net.run(np.ones((10, 3)))
    assert info.value.hint == "check p/li_op/tau = 0"  # k = 0 is harmless: only tau is named
    per_unit = population(node_vars={"li_op/tau": np.array([1.0, 0.0, 2.0])})
    with pytest.raises(NonFiniteError, match="check p/li_op/tau = an array with 1 zeros"):
        per_unit.run(np.ones((10, 3)))
    blow_up = population()  # finite where it starts, then overflows: that one is the step size's
    with pytest.raises(NonFiniteError, match="reduce dt"):
        blow_up.run(np.full((1000, 3), 5e307))  # v tends to tau * 5e307, past the largest float


def test_gradients_and_fitting_take_inputs_that_add_up_with_a_feedback_edge():
    """grad() through a FeedbackNetwork whose driven node is fed back: against central finite
    differences of the loss of runs."""
    u = np.random.default_rng(6).normal(size=(60, 3))
    target = np.zeros((60, 2))

    def network(tau):
        net = FeedbackNetwork(dt=1e-2)
        net.add_diffeq_node("A", TANH, "li_op/I_ext", "tanh_op/r", N=3, node_vars={"li_op/tau": tau},
                            train_params=["li_op/tau"])
        net.add_diffeq_node("B", TANH, "li_op/I_ext", "tanh_op/r", N=2)
        net.add_edge("A", "B", np.ones((2, 3)))
        net.add_edge("B", "A", np.full((3, 2), 0.5), feedback=True)
        return net

    def loss(tau):
        return np.mean((network(tau).run(u)["out"] - target) ** 2)

    value, gradients = network(4.0).grad(u, target)
    assert value == pytest.approx(loss(4.0), rel=1e-12)
    assert gradients["A/li_op/tau"] == pytest.approx((loss(4.0 + 1e-5) - loss(4.0 - 1e-5)) / 2e-5, rel=1e-5)
    obs, tested = network(4.0).test(u, target)
    assert tested == pytest.approx(value, rel=1e-12)
