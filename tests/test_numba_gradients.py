"""grad() of the compiled CPU backend (backend='numba') against the NumPy module's grad() of the
same arguments, to 1e-10 (tests/test_gradients.py holds NumPy's to finite differences and to an
autograd loop, tests/test_spiking.py its surrogate gradients to a hand-written reverse loop).

numba compiles each grad() kernel once per test session (seconds): the tests share one module per
model, and take the segments' checkpoints from the NumPy module's run() (no numba run() to compile).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from modelc import Network  # noqa: E402
from modelc.runtime.compiler import compile_model  # noqa: E402

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
SEED_COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext", output_var="li_op/v")
LIF = "neuron_model_templates.spiking_neurons.lif.lif"
REDUCING = """
red:
  base: OperatorTemplate
  equations:
    - "x' = -x/tau + k*mean(tanh(x))*x - sum(a*x^2)/10 + sum(b) + c*mean(x^2) + x*mean(a)/5 + I"
    - "p = exp(x)/sum(exp(x))"
  variables: {x: output(0.1), p: variable(0.0), tau: 2.0, k: 0.8, a: 0.5, b: 0.05, c: 0.3, I: input(0.0)}
"""


def both(template, **options):
    """The NumPy module and the numba module of one model."""
    return compile_model(template, **options), compile_model(template, backend="numba", **options)


def checkpoints_of(module, y0, params, inputs, dt, steps, every):
    """The (stop, states) pairs of run(chunk_steps=every): grad()'s segments without a forward of its own."""
    found = []
    module.run(y0, params, inputs, dt, steps, record=[], chunk_steps=every,
               on_chunk=lambda stop, states: found.append((stop, {k: np.array(v) for k, v in states.items()})))
    return found


def assert_same_gradients(got: dict, want: dict, tolerance=1e-10):
    for part in ("params", "y0"):
        assert set(got[part]) == set(want[part])
        for name, value in want[part].items():
            assert np.shape(got[part][name]) == np.shape(value), name
            np.testing.assert_allclose(got[part][name], value, rtol=0,
                                       atol=tolerance * max(1.0, float(np.max(np.abs(value)))), err_msg=name)


@pytest.fixture(scope="module")
def seed_rk4():
    return both(SEED, coupling=SEED_COUPLING, method="rk4", vector_params=["li_op/eta"],
                trainable=["weights", "li_op/tau", "li_op/k", "li_op/eta"])


def test_seed_rk4_batch_y0_per_unit_eta_and_a_recorded_computed_variable(seed_rk4):
    """Recurrent weights, scalar tau and k, a per-unit eta, a batch of 2, y0, cotangents of the
    state and of tanh_op/r every second step, in one segment and in segments of 5 steps."""
    numpy, numba = seed_rk4
    rng = np.random.default_rng(1)
    n, steps, dt = 5, 23, 0.05
    shape = (2, n)
    params = {"weights": rng.standard_normal((n, n)), "li_op/tau": 2.0, "li_op/k": 0.7,
              "li_op/eta": rng.uniform(-0.2, 0.2, n)}
    y0, inputs = {"li_op/v": rng.standard_normal(shape)}, {"li_op/I_ext": rng.standard_normal((steps,) + shape)}
    cotangents = {"li_op/v": rng.standard_normal((steps // 2,) + shape),
                  "tanh_op/r": rng.standard_normal((steps // 2,) + shape)}
    args = (y0, params, inputs, dt, steps, cotangents)
    want = numpy.grad(*args, sampling_steps=2)
    assert_same_gradients(numba.grad(*args, sampling_steps=2), want)
    checkpoints = checkpoints_of(numpy, y0, params, inputs, dt, steps, 5)
    assert len(checkpoints) == 5
    assert_same_gradients(numba.grad(*args, sampling_steps=2, checkpoint_steps=5, checkpoints=checkpoints), want)


def test_cotangents_from_a_function_of_the_records(seed_rk4):
    """grad(cotangents=function): the forward's records under "run", as run() records them."""
    numpy, numba = seed_rk4
    rng = np.random.default_rng(2)
    n, steps = 4, 30
    args = ({"li_op/v": rng.standard_normal(n)}, {"weights": rng.standard_normal((n, n)), "li_op/tau": 3.0},
            {"li_op/I_ext": rng.standard_normal((steps, n))}, 0.05, steps)
    target = rng.standard_normal((steps, n))

    def cotangents(result):
        return {"li_op/v": result["li_op/v"] - target}

    want, got = numpy.grad(*args, cotangents, record=["li_op/v"]), numba.grad(*args, cotangents, record=["li_op/v"])
    np.testing.assert_allclose(got["run"]["li_op/v"], want["run"]["li_op/v"], rtol=0, atol=1e-12)
    assert_same_gradients(got, want)


def test_mean_and_sum_over_the_population_and_a_softmax_readout(tmp_path):
    """mean() and sum() in a derivative (a per-unit parameter inside sum(), a scalar one that sum()
    counts once per unit, a mean of parameters alone: a loop invariant) and a recorded softmax with
    its own cotangent. (The compiled forward refuses a reduction inside another's argument.)"""
    (tmp_path / "red.yaml").write_text(REDUCING)
    numpy, numba = both(f"{tmp_path / 'red.yaml'}:red", method="heun", vector_params=["red/a"],
                        trainable=["red/tau", "red/k", "red/a", "red/b", "red/c"])
    rng = np.random.default_rng(9)
    n, steps, shape = 4, 17, (2, 4)
    params = {**numpy.default_params(), "red/a": rng.uniform(0.2, 0.8, n)}
    y0, inputs = {"red/x": 0.5 * rng.standard_normal(shape)}, {"red/I": rng.standard_normal((steps,) + shape)}
    cotangents = {"red/x": rng.standard_normal((steps,) + shape), "red/p": rng.standard_normal((steps,) + shape)}
    args = (y0, params, inputs, 0.05, steps, cotangents)
    checkpoints = checkpoints_of(numpy, y0, params, inputs, 0.05, steps, 6)
    assert_same_gradients(numba.grad(*args, checkpoint_steps=6, checkpoints=checkpoints), numpy.grad(*args))


def test_events_with_surrogate_gradients():
    """A coupled LIF network (W @ s, resets, a refractory hold): weights and per-unit eta through
    the fast sigmoid's surrogate, the reset mask held fixed."""
    numpy, numba = both(LIF, coupling=dict(source_var="lif_op/s", target_var="lif_op/s_in"),
                        vector_params=["lif_op/eta"], trainable=["weights", "lif_op/eta", "lif_op/tau"])
    rng = np.random.default_rng(6)
    n, dt, steps = 8, 0.05, 300
    params = {"weights": rng.uniform(0, 0.5, (n, n)), "lif_op/eta": rng.uniform(0.09, 0.2, n), "lif_op/t_ref": 0.2}
    y0 = {"lif_op/v": rng.uniform(0.0, 1.0, n), "lif_op/s": np.zeros(n), "lif_op/spike_refractory": np.zeros(n)}
    inputs = {"lif_op/I_ext": 0.03}
    spikes = numpy.run(y0, params, inputs, dt, steps, record=["lif_op/spike"])["lif_op/spike"]
    assert spikes.sum() > 10  # the gradient goes through spikes, resets and holds
    cotangents = {"lif_op/v": rng.normal(size=(steps, n)), "lif_op/s": rng.normal(size=(steps, n))}
    args = (y0, params, inputs, dt, steps, cotangents)
    checkpoints = checkpoints_of(numpy, y0, params, inputs, dt, steps, 64)
    want = numpy.grad(*args)
    assert_same_gradients(numba.grad(*args), want)
    assert_same_gradients(numba.grad(*args, checkpoint_steps=64, checkpoints=checkpoints), want)


def test_a_network_with_edge_weights_trains_as_with_numpy():
    """Two seed nodes (recurrent weights, tau trained), an edge trained by gradients, euler:
    Network.grad and fit_bptt (online updates and a batch of trials) give NumPy's numbers."""
    rng = np.random.default_rng(4)
    recurrent, edge = 0.5 * rng.standard_normal((3, 3)), rng.standard_normal((2, 3))

    def network(backend):
        net = Network(dt=0.05, backend=backend)
        net.add_diffeq_node("in", SEED, weights=recurrent, train_params=["weights"], **SEED_COUPLING)
        net.add_diffeq_node("out", SEED, weights=np.zeros((2, 2)), train_params=["li_op/tau"], **SEED_COUPLING)
        net.add_edge("in", "out", edge, train="gd")
        return net

    nets = [network("numpy"), network("numba")]
    inputs, targets = rng.standard_normal((40, 3)), 0.1 * rng.standard_normal((40, 2))
    (loss_numpy, grads_numpy), (loss_numba, grads_numba) = (net.grad(inputs, targets) for net in nets)
    assert loss_numba == pytest.approx(loss_numpy, rel=1e-12)
    assert_same_gradients({"params": grads_numba, "y0": {}}, {"params": grads_numpy, "y0": {}})
    online = [net.fit_bptt(inputs, targets, optimizer="sgd", lr=1e-2, update_steps=10) for net in nets]
    np.testing.assert_allclose(online[1]["loss"], online[0]["loss"], rtol=1e-10)
    trials, trial_targets = rng.standard_normal((3, 40, 3)), 0.1 * rng.standard_normal((3, 40, 2))
    fitted = [net.fit_bptt(trials, trial_targets, optimizer="adam", lr=1e-2, epochs=3) for net in nets]
    np.testing.assert_allclose(fitted[1]["epoch_loss"], fitted[0]["epoch_loss"], rtol=1e-10)
    assert fitted[1]["epoch_loss"][-1] < fitted[1]["epoch_loss"][0]
