"""Network.grad, fit_bptt and test: gradients of a whole network against finite differences of
Network.run, a batch of trials against single trials, and training that learns."""
from __future__ import annotations

import numpy as np
import pytest

from modelc import Network
from modelc.errors import InvalidValueError, ShapeError, WiringError

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
WIRING = dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext", output_var="li_op/v")


def _rnn(J, train_params=("weights",), method="euler", dt=1e-2, tau=1.0):
    net = Network(dt=dt)
    net.add_diffeq_node("rnn", SEED, weights=J, node_vars={"li_op/tau": tau}, train_params=list(train_params),
                        method=method, **WIRING)
    return net


def _two_layers(rng, method="heun"):
    """in (diffeq) -> edge trained by gradients -> out (diffeq), tau of 'out' trained too."""
    net = Network(dt=0.05)
    net.add_diffeq_node("in", SEED, weights=0.5 * rng.standard_normal((3, 3)), method=method, **WIRING)
    net.add_diffeq_node("out", SEED, weights=np.zeros((2, 2)), train_params=["li_op/tau"], method=method, **WIRING)
    net.add_edge("in", "out", rng.standard_normal((2, 3)), train="gd")
    return net


def test_network_gradients_against_finite_differences_of_run():
    rng = np.random.default_rng(0)
    net = _two_layers(rng)
    inputs, targets = rng.standard_normal((30, 3)), rng.standard_normal((30, 2))
    loss, gradients = net.grad(inputs, targets)
    assert set(gradients) == {"out/li_op/tau", "in->out"}

    def loss_with(change):
        change()
        net.reset()
        out = net.run(inputs)["out"]
        net.reset()
        return np.mean((out - targets) ** 2)

    assert loss == pytest.approx(loss_with(lambda: None), rel=1e-12)
    h, tau = 1e-6, net.get_var("out", "li_op/tau")
    numeric = (loss_with(lambda: net.set_var("out", "li_op/tau", tau + h)) -
               loss_with(lambda: net.set_var("out", "li_op/tau", tau - h))) / (2 * h)
    net.set_var("out", "li_op/tau", tau)
    assert gradients["out/li_op/tau"] == pytest.approx(numeric, rel=1e-6)
    weights = net.get_edge("in", "out").weights.copy()
    for index in [(0, 0), (1, 2)]:
        up, down = weights.copy(), weights.copy()
        up[index] += h
        down[index] -= h

        def set_edge(w):
            return lambda: setattr(net.get_edge("in", "out"), "weights", w)
        numeric = (loss_with(set_edge(up)) - loss_with(set_edge(down))) / (2 * h)
        assert gradients["in->out"][index] == pytest.approx(numeric, rel=1e-6, abs=1e-12)
    net.get_edge("in", "out").weights = weights


def test_a_batch_of_trials_is_the_mean_of_single_trials():
    """The batched loss is the mean over trials, so its gradient is the mean of the trials'."""
    rng = np.random.default_rng(1)
    net = _rnn(rng.standard_normal((5, 5)), train_params=["weights", "li_op/tau"], method="rk4")
    trials, targets = rng.standard_normal((6, 20, 5)), rng.standard_normal((6, 20, 5))
    loss, batched = net.grad(trials, targets)
    single = [net.grad(x, y) for x, y in zip(trials, targets)]
    assert loss == pytest.approx(np.mean([value for value, _ in single]), rel=1e-12)
    for name in batched:
        np.testing.assert_allclose(batched[name], np.mean([g[name] for _, g in single], axis=0), rtol=1e-10)


def test_teacher_student_learns_the_recurrent_weights():
    rng = np.random.default_rng(2)
    n, steps = 20, 60
    teacher = _rnn(1.5 * rng.standard_normal((n, n)) / np.sqrt(n), train_params=())
    trials = 2 * rng.standard_normal((8, steps, n))
    targets = []
    for x in trials:
        teacher.reset()
        targets.append(teacher.run(x)["out"])
    student = _rnn(1.5 * rng.standard_normal((n, n)) / np.sqrt(n))
    obs = student.fit_bptt(list(trials), np.stack(targets), optimizer="adam", lr=3e-2, epochs=150)
    losses = obs["epoch_loss"]
    assert losses.shape == (150,) and losses[-1] < losses[0] / 100
    assert obs["out"].shape == (steps, 8, n)
    _, test_loss = student.test(trials[0], targets[0])
    assert test_loss < losses[0] / 100


def test_online_bptt_updates_every_few_steps_and_carries_the_state():
    rng = np.random.default_rng(3)
    net = _rnn(rng.standard_normal((4, 4)) / 2, train_params=["li_op/tau"])
    before = net.get_var("rnn", "li_op/tau")
    inputs = rng.standard_normal((100, 4))
    obs = net.fit_bptt(inputs, np.zeros((100, 4)), lr=1e-2, update_steps=25)
    assert obs["loss"].shape == (4,) and obs["out"].shape == (100, 4)
    assert net.time == pytest.approx(100 * 1e-2)
    assert net.get_var("rnn", "li_op/tau") != before  # the trained value is the network's now


def test_what_cannot_be_trained_is_said():
    net = _rnn(np.zeros((3, 3)), train_params=())
    with pytest.raises(WiringError, match="nothing in the network is trainable"):
        net.grad(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(InvalidValueError, match="train must be one of"):
        net.add_diffeq_node("b", SEED, weights=np.zeros((3, 3)), **WIRING)
        net.add_edge("rnn", "b", np.eye(3), train="bogus")


def test_a_readout_trained_through_its_edge():
    """Reservoir -> edge trained by gradients -> identity readout (a computed output), the
    targets read out from the same reservoir by other weights: the readout can match them."""
    rng = np.random.default_rng(5)

    def network(w_out, train):
        net = Network(dt=1e-2)
        net.add_diffeq_node("rnn", SEED, weights=rng.standard_normal((20, 20)) / 4, **WIRING)
        net.add_func_node("out", 2, "identity")
        net.add_edge("rnn", "out", w_out, train=train)
        return net
    teacher = network(rng.standard_normal((2, 20)), None)
    inputs = rng.standard_normal((6, 80, 20))
    targets = np.stack([_run_reset(teacher, x) for x in inputs])
    student = network(np.zeros((2, 20)), "gd")
    student.get_node("rnn").weights = teacher.get_node("rnn").weights
    obs = student.fit_bptt(inputs, targets, optimizer="adam", lr=5e-2, epochs=150)
    assert obs["epoch_loss"][-1] < obs["epoch_loss"][0] / 100


def _run_reset(net, inputs):
    net.reset()
    return net.run(inputs)["out"]


def test_testing_on_trials_leaves_the_state():
    rng = np.random.default_rng(6)
    net = _rnn(rng.standard_normal((3, 3)) / 2, train_params=())
    _, loss = net.test(rng.standard_normal((4, 10, 3)), np.zeros((4, 10, 3)))
    assert loss > 0 and net.time == 0.0
    assert net.run(rng.standard_normal((5, 3)))["out"].shape == (5, 3)  # no batch axis left behind
    with pytest.raises(ShapeError, match="targets"):
        net.test(rng.standard_normal((4, 10, 3)), np.zeros(10))


def test_the_progress_bar_of_fit_bptt_shows_the_loss(capsys, monkeypatch):
    """fit_bptt(verbose=True): one bar tick per epoch (trials) or per update (one sequence), the
    last one's loss beside it."""
    import builtins
    real_import = builtins.__import__

    def without_tqdm(name, *args, **kwargs):  # the plain bar, whether tqdm is installed or not
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tqdm)
    rng = np.random.default_rng(12)
    net = _rnn(rng.standard_normal((3, 3)) / 2)
    obs = net.fit_bptt([rng.standard_normal((20, 3))], rng.standard_normal((1, 20, 3)), epochs=3, verbose=True)
    shown = capsys.readouterr().err.split("\r")[-1]
    assert "3/3 epochs" in shown and f"loss={obs['epoch_loss'][-1]:.4g}" in shown
    obs = net.fit_bptt(rng.standard_normal((25, 3)), rng.standard_normal((25, 3)), update_steps=10, verbose=True)
    shown = capsys.readouterr().err.split("\r")[-1]
    assert "3/3 updates" in shown and f"loss={obs['loss'][-1]:.4g}" in shown


def test_a_parameter_left_at_its_default_trains():
    """train_params may name a parameter nobody set (its template's default): one sgd step moves it by lr * grad."""
    rng = np.random.default_rng(3)
    net = _two_layers(rng)
    assert "li_op/tau" not in net.get_node("out").values
    inputs, targets = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    tau = float(net.get_var("out", "li_op/tau"))
    _, gradients = net.grad(inputs, targets)
    net.reset()
    net.fit_bptt(inputs, targets, optimizer="sgd", lr=0.1, update_steps=20, verbose=False)
    assert float(net.get_var("out", "li_op/tau")) == pytest.approx(tau - 0.1 * gradients["out/li_op/tau"], rel=1e-12)
