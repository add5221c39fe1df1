"""Readouts without gradients — Network.fit_ridge (closed form) and Network.fit_rls (FORCE) —
and RectiPy's reservoir helpers: random_connectivity, input_connections, normalize, wta_score."""
from __future__ import annotations

import numpy as np
import pytest

from modelc import Network, input_connections, normalize, random_connectivity, wta_score
from modelc.errors import InvalidNameError, InvalidValueError, ShapeError, WiringError
from modelc.runtime.network.readout import RecursiveLeastSquares

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
WIRING = dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext", output_var="tanh_op/r")
DT = 0.1


def _reservoir(rng, n, gain, n_in=None, **node_vars):
    """A tanh reservoir (tau = 1) with recurrent weights gain * N(0, 1/n); with n_in, fed by an
    input node through input_connections."""
    net = Network(dt=DT)
    net.add_diffeq_node("res", SEED, weights=gain * rng.standard_normal((n, n)) / np.sqrt(n),
                        node_vars={"li_op/tau": 1.0, **node_vars}, **WIRING)
    if n_in is not None:
        net.add_func_node("inp", n_in)
        net.add_edge("inp", "res", 2 * input_connections(n, n_in, 1.0, zero_mean=False, seed=rng))
    return net


# -- fit_ridge ---------------------------------------------------------------------------

def _frequency_trials(rng, count, steps=200):
    """5 classes: a noisy sine whose frequency is the class (0.5, 1, ... 2.5 rad per unit time),
    at a random phase."""
    labels = rng.integers(0, 5, count)
    t = np.arange(steps) * DT
    phase = rng.uniform(0, 2 * np.pi, (count, 1))
    signal = np.sin((0.5 + 0.5 * labels)[:, None] * t + phase) + 0.3 * rng.standard_normal((count, steps))
    return signal[..., None], labels


def test_ridge_readout_classifies_five_frequencies():
    rng = np.random.default_rng(0)
    net = _reservoir(rng, 200, 1.2, n_in=1, eta=rng.standard_normal(200))
    steps, sampling = 200, 10
    rows = steps // sampling
    inputs, labels = _frequency_trials(rng, 200, steps)
    onehot = np.repeat(np.eye(5)[labels][:, None], rows, axis=1)  # (B, T // sampling_steps, 5)
    obs = net.fit_ridge(inputs, onehot, sampling_steps=sampling, alpha=1e-3)
    X, weights = obs["out"], obs["w_out"]
    assert X.shape == (rows, 200, 200) and weights.shape == (5, 200) and net.time == 0.0  # trials leave the state
    np.testing.assert_allclose(obs["y"], X @ weights.T)

    # the solution of the normal equations is the least-squares solution of [X; √α I] Wᵀ = [Y; 0]
    rows_x, rows_y = X.reshape(-1, 200), np.swapaxes(onehot, 0, 1).reshape(-1, 5)
    augmented = np.vstack([rows_x, np.sqrt(1e-3) * np.eye(200)])
    reference = np.linalg.lstsq(augmented, np.vstack([rows_y, np.zeros((200, 5))]), rcond=None)[0]
    np.testing.assert_allclose(weights, reference.T, rtol=1e-6, atol=1e-8)

    # the readout is the network's output now: held-out trials, scored by the mean over each trial's second half
    assert net.nodes == ["res", "inp", "readout"]
    held_out, held_labels = _frequency_trials(rng, 100, steps)
    test_obs, _ = net.test(held_out, np.repeat(np.eye(5)[held_labels][:, None], rows, axis=1),
                           sampling_steps=sampling)
    accuracy = wta_score(test_obs["out"][rows // 2:].mean(axis=0), held_labels)
    assert accuracy > 0.9  # measured: 1.0


def test_ridge_on_one_sequence_goes_on_from_the_state_and_the_readout_reproduces_the_fit():
    rng = np.random.default_rng(1)
    net = _reservoir(rng, 30, 0.9)
    phase = 0.1 * np.arange(300)
    inputs = np.sin(phase)[:, None] * rng.standard_normal(30)  # (T, 30)
    targets = np.stack([np.cos(phase), np.sin(phase - 1)], axis=1)  # delayed copies: the reservoir's memory
    obs = net.fit_ridge(inputs, targets)
    assert net.time == pytest.approx(300 * DT) and obs["w_out"].shape == (2, 30)
    assert np.mean((obs["y"] - targets)[100:] ** 2) < 0.01 * np.mean(targets ** 2)
    net.reset()
    np.testing.assert_allclose(net.run(inputs)["out"], obs["y"], atol=1e-12)
    with pytest.raises(InvalidNameError, match="already a node 'readout'"):
        net.fit_ridge(inputs, targets)  # refused before the run
    assert net.time == pytest.approx(300 * DT)


def test_ridge_mistakes_are_said():
    rng = np.random.default_rng(2)
    net = _reservoir(rng, 5, 0.5)
    with pytest.raises(ShapeError, match=r"targets must have shape \(T // sampling_steps, k\) with T // "
                                         r"sampling_steps = 5, got \(10, 2\)"):
        net.fit_ridge(np.zeros((10, 5)), np.zeros((10, 2)), sampling_steps=2)
    with pytest.raises(ShapeError, match=r"\(B, T // sampling_steps, k\)"):
        net.fit_ridge(np.zeros((3, 10, 5)), np.zeros((3, 10)))
    with pytest.raises(InvalidValueError, match=r"alpha must lie in \[0, inf\)"):
        net.fit_ridge(np.zeros((10, 5)), np.zeros((10, 2)), alpha=-1)
    with pytest.raises(InvalidValueError, match="singular"):
        net.fit_ridge(np.zeros((3, 5)), np.zeros((3, 2)), alpha=0)
    assert "readout" not in net


# -- fit_rls -----------------------------------------------------------------------------

def test_rls_matches_the_weighted_ridge_solution():
    """RLS with forgetting factor beta and P = I/alpha minimises
    sum_i beta^(t-i) |y_i - W x_i|^2 + alpha beta^t |W - W_0|^2 — exactly, at every step."""
    rng = np.random.default_rng(3)
    x, y, w0 = rng.standard_normal((40, 6)), rng.standard_normal((40, 2)), rng.standard_normal((2, 6))
    alpha, beta = 0.5, 0.95
    rule = RecursiveLeastSquares(w0, alpha, beta)
    for sample, target in zip(x, y):
        rule.update(sample, target - rule.weights @ sample)
    decay = beta ** np.arange(len(x) - 1, -1, -1)
    fading = alpha * beta ** len(x)
    gram = fading * np.eye(6) + (x * decay[:, None]).T @ x
    closed = np.linalg.solve(gram, fading * w0.T + (x * decay[:, None]).T @ y).T
    np.testing.assert_allclose(rule.weights, closed, rtol=1e-9)


def test_fit_rls_is_rls_on_the_edges_source_output():
    """An open-loop readout: its source's outputs do not depend on the weights, so a hand-written
    RLS loop over a plain run's record must give the same weights, losses and outputs."""
    rng = np.random.default_rng(4)
    J, inputs = rng.standard_normal((12, 12)) / np.sqrt(12), rng.standard_normal((103, 12))
    targets = rng.standard_normal((51, 2))  # rows of sampling_steps = 2
    start = rng.standard_normal((2, 12))
    given = start.copy()

    def network():
        net = Network(dt=DT)
        net.add_diffeq_node("res", SEED, weights=J, node_vars={"li_op/tau": 1.0}, **WIRING)
        net.add_func_node("out", 2)
        net.add_edge("res", "out", start, train="rls")
        return net

    net = network()
    obs = net.fit_rls(inputs, targets, update_steps=4, sampling_steps=2, beta=0.9, alpha=0.3)
    assert net.time == pytest.approx(103 * DT) and np.array_equal(start, given)  # the user's array is not changed
    x = network().run(inputs, sampling_steps=2, record_vars=[("res", "tanh_op/r")])[("res", "tanh_op/r")]

    weights, P, outputs, losses = _hand_written_rls(x, targets, start.copy(), np.eye(12) / 0.3, 0.9)
    np.testing.assert_allclose(net.get_edge("res", "out").weights, weights, rtol=1e-9)
    np.testing.assert_allclose(obs["loss"], losses, rtol=1e-9)
    np.testing.assert_allclose(obs["out"], outputs, rtol=1e-9, atol=1e-12)


def _hand_written_rls(x, targets, weights, P, beta):
    """RLS every 2 recorded rows (4 steps of sampling_steps 2) and after the last chunk."""
    outputs, losses = [], []
    for row in range(len(x)):
        outputs.append(weights @ x[row])
        if row % 2 == 1 or row == len(x) - 1:  # an update every 4 steps = 2 rows, and after the last chunk
            error = targets[row] - weights @ x[row]
            P = (P - np.outer(P @ x[row], x[row] @ P) / (beta + x[row] @ P @ x[row])) / beta
            weights = weights + np.outer(error, P @ x[row])
            losses.append(np.mean(error ** 2))
    return weights, P, outputs, losses


def _open_loop(J, start):
    net = Network(dt=DT)
    net.add_diffeq_node("res", SEED, weights=J, node_vars={"li_op/tau": 1.0}, **WIRING)
    net.add_func_node("out", 2)
    net.add_edge("res", "out", start, train="rls")
    return net


def test_fit_rls_keeps_P_on_the_edge_and_learns_a_list_of_sequences():
    """Two calls on the halves of a sequence learn what one call on all of it learns (P goes on,
    as RectiPy's RLS edge keeps it); a list of sequences is learnt one after another, each from
    the state at the call — against the hand-written RLS over plain runs' records."""
    rng = np.random.default_rng(7)
    J, start = rng.standard_normal((12, 12)) / np.sqrt(12), rng.standard_normal((2, 12))
    inputs, targets = rng.standard_normal((103, 12)), rng.standard_normal((51, 2))
    whole, halves = _open_loop(J, start), _open_loop(J, start)
    whole.fit_rls(inputs, targets, update_steps=4, sampling_steps=2, beta=0.9, alpha=0.3)
    halves.fit_rls(inputs[:52], targets[:26], update_steps=4, sampling_steps=2, beta=0.9, alpha=0.3)
    halves.fit_rls(inputs[52:], targets[26:], update_steps=4, sampling_steps=2, beta=0.9, alpha=0.3)
    np.testing.assert_allclose(halves.get_edge("res", "out").weights, whole.get_edge("res", "out").weights, rtol=1e-9)

    sequences, rows = rng.standard_normal((3, 40, 12)), rng.standard_normal((3, 20, 2))
    net = _open_loop(J, start)
    obs = net.fit_rls(list(sequences), rows, update_steps=4, sampling_steps=2, beta=0.9, alpha=0.3)
    weights, P, outputs, losses = start.copy(), np.eye(12) / 0.3, [], []
    for sequence, target in zip(sequences, rows):
        x = _open_loop(J, start).run(sequence, sampling_steps=2, record_vars=[("res", "tanh_op/r")])[("res", "tanh_op/r")]
        weights, P, out, loss = _hand_written_rls(x, target, weights, P, 0.9)
        outputs.append(out)
        losses += loss
    np.testing.assert_allclose(net.get_edge("res", "out").weights, weights, rtol=1e-9)
    np.testing.assert_allclose(obs["loss"], losses, rtol=1e-9)
    np.testing.assert_allclose(obs["out"], np.stack(outputs, axis=1), rtol=1e-9, atol=1e-12)
    assert net.time == 0.0  # sequences leave the state where it was
    with pytest.raises(ShapeError, match="one length"):
        net.fit_rls([sequences[0], sequences[1][:30]], rows[:2])


def test_force_learns_a_sine_generator():
    """FORCE (Sussillo & Abbott 2009): a chaotic reservoir (gain 1.5) whose readout is fed back;
    RLS on the readout every 2 steps makes it a sine generator of period 10 that keeps going
    after training, on its own."""
    rng = np.random.default_rng(5)
    n, steps, period = 200, 3000, 10.0
    net = _reservoir(rng, n, 1.5, **{"li_op/v": rng.uniform(-1, 1, n)})
    net.add_func_node("readout", 1)
    net.add_edge("res", "readout", np.zeros((1, n)), train="rls")
    net.add_edge("readout", "res", rng.uniform(-1, 1, (n, 1)), target_var="li_op/r_in", feedback=True)
    sine = np.sin(2 * np.pi * DT * np.arange(1, 2 * steps + 1) / period)[:, None]
    obs = net.fit_rls(np.zeros(steps), sine[:steps], update_steps=2)
    assert obs["loss"].shape == (steps // 2,)
    training_error = np.sqrt(np.mean((obs["out"] - sine[:steps])[-steps // 5:] ** 2))
    assert training_error < 0.05  # measured: 0.006 (0.006 to 0.033 over seeds 0-5)
    free_error = np.sqrt(np.mean((net.run(np.zeros(500))["out"] - sine[steps:steps + 500]) ** 2))
    assert free_error < 0.15  # measured: 0.010 (5 periods without learning; 0.007 to 0.12 over seeds 0-5)


def test_rls_mistakes_are_said():
    rng = np.random.default_rng(6)
    net = _reservoir(rng, 4, 0.5)
    with pytest.raises(WiringError, match="no edge is trained by RLS"):
        net.fit_rls(np.zeros((10, 4)), np.zeros((10, 4)))
    net.add_func_node("out", 1)
    net.add_func_node("side", 1)
    net.add_edge("res", "side", np.zeros((1, 4)), train="rls")
    net.add_edge("res", "out", np.zeros((1, 4)))
    net.add_edge("side", "out", 1.0)
    with pytest.raises(WiringError, match="must end at the output node 'out'"):
        net.fit_rls(np.zeros((10, 4)), np.zeros((10, 1)))
    net.pop_node("side")
    net.pop_edge("res", "out")
    net.add_edge("res", "out", np.zeros((1, 4)), train="rls")
    with pytest.raises(InvalidValueError, match="multiple of sampling_steps"):
        net.fit_rls(np.zeros((10, 4)), np.zeros((5, 1)), update_steps=3, sampling_steps=2)
    with pytest.raises(InvalidValueError, match=r"beta must lie in \(0, 1\]"):
        net.fit_rls(np.zeros((10, 4)), np.zeros((10, 1)), beta=1.5)
    with pytest.raises(ShapeError, match="targets must have shape"):
        net.fit_rls(np.zeros((10, 4)), np.zeros((10, 2)))


# -- reservoir helpers ---------------------------------------------------------------------

def test_random_connectivity_has_floor_m_p_inputs_per_row():
    weights = random_connectivity(50, 100, 0.29, seed=7)  # 100 * 0.29 = 28.999999999999996 in binary
    assert weights.shape == (50, 100)
    assert np.all((weights > 0).sum(axis=1) == 29)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    ones = random_connectivity(20, 10, 0.35, normalize=False, seed=7)
    assert np.all((ones > 0).sum(axis=1) == 3) and set(np.unique(ones)) == {0.0, 1.0}
    assert np.array_equal(random_connectivity(5, 9, 0.5, seed=1), random_connectivity(5, 9, 0.5, seed=1))
    assert not np.array_equal(random_connectivity(5, 9, 0.5, seed=1), random_connectivity(5, 9, 0.5, seed=2))
    with pytest.raises(InvalidValueError, match="rows without inputs"):
        random_connectivity(3, 10, 0.05)
    with pytest.raises(InvalidValueError, match="probability"):
        random_connectivity(3, 10, 1.5)


def test_input_connections_reach_floor_n_p_units_with_the_variance_asked_for():
    weights = input_connections(1000, 40, 0.5, variance=4.0, zero_mean=False, seed=8)
    assert weights.shape == (1000, 40) and np.all((weights != 0).sum(axis=0) == 500)
    assert np.var(weights[weights != 0]) == pytest.approx(4.0, rel=0.05)
    balanced = input_connections(30, 6, 0.2, seed=8)
    assert np.all((balanced != 0).sum(axis=0) == 6)
    np.testing.assert_allclose(balanced.sum(axis=0), 0.0, atol=1e-12)
    assert np.array_equal(input_connections(8, 3, 0.5, seed=3), input_connections(8, 3, 0.5, seed=3))
    with pytest.raises(InvalidValueError, match="every weight would be 0"):
        input_connections(10, 2, 0.1)  # one unit per input, shifted to mean 0


def test_normalize_modes():
    x = np.array([[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(normalize(x), [[0.0, 0.5, 1.0], [0.25, 0.25, 0.25]])
    np.testing.assert_allclose(normalize(x, row_wise=True), [[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]])
    z = normalize(x, "zscore")
    assert z.mean() == pytest.approx(0.0, abs=1e-12) and z.std() == pytest.approx(1.0)
    z_rows = normalize(x, "zscore", row_wise=True)
    np.testing.assert_allclose(z_rows[0], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    np.testing.assert_allclose(z_rows[1], 0.0)
    assert normalize(x, "sum").sum() == pytest.approx(1.0)
    np.testing.assert_allclose(normalize(x, "sum", row_wise=True).sum(axis=1), 1.0)
    assert x[0, 0] == 1.0  # a new array, the argument unchanged
    with pytest.raises(InvalidValueError, match="did you mean 'zscore'"):
        normalize(x, "z-score")
    with pytest.raises(InvalidValueError, match="sums to 0"):
        normalize([1.0, -1.0], "sum")


def test_wta_score_by_hand():
    x = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.6, 0.4, 0.0]])
    classes = np.array([1, 0, 1, 1])  # right, right, wrong, wrong
    assert wta_score(x, classes) == 0.5
    assert wta_score(x, np.eye(3)[classes]) == 0.5
    assert wta_score(x, x) == 1.0
    with pytest.raises(ShapeError, match="class indices"):
        wta_score(x, classes[:3])
