"""Network and Observer, each result checked against a NumPy loop written by hand in this file.

The references are plain forward-Euler loops over the documented equations of the seed model
(models/neuron_model_templates/rate_neurons/leaky_integrator.yaml):

    li_op:      v' = -v/tau + k*r_in + I_ext + eta
    tanh_op:    r = tanh(v)
    sigmoid_op: r = r_max/(1 + exp(s*(v0 - v)))

and the weight convention ``weights[i, j]`` = from unit j to unit i (r_in = W @ r). Step k
uses input row k and advances t_k -> t_{k+1}; row k of a record is the value after step
(k + 1) * sampling_steps. Different summation orders make the loops and the generated code
differ by rounding only; tolerances are 1e-10 (relative, plus 1e-10 absolute).
"""
from __future__ import annotations

import json
import threading
import zipfile

import numpy as np
import pytest

from modelc import Network, Observer, compile_model
from modelc.errors import (BackendUnavailableError, InvalidValueError, NetworkBusyError, NonFiniteError, ShapeError,
                           UnknownMethodError, UnknownVariableError, UnsupportedFeatureError, WiringError)

TANH = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
SIGMOID = "neuron_model_templates.rate_neurons.leaky_integrator.sigmoid"
TOL = dict(rtol=1e-10, atol=1e-10)


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, **TOL)


def sigmoid_rate(v, r_max=1.0, s=1.0, v0=0.0):
    return r_max / (1.0 + np.exp(s * (v0 - v)))


def euler_tanh(J, inputs, dt, tau=10.0, k=1.0, eta=0.0, v0=None):
    """The tanh population: every step v += dt*(-v/tau + k*J@tanh(v) + I + eta); the states after each step."""
    v = np.zeros(J.shape[0]) if v0 is None else np.array(v0, dtype=float)
    out = np.empty((len(inputs), J.shape[0]))
    for step, current in enumerate(inputs):
        v = v + dt * (-v / tau + k * (J @ np.tanh(v)) + current + eta)
        out[step] = v
    return out


def tanh_network(J, dt=1e-3, **node_vars):
    net = Network(dt=dt)
    net.add_diffeq_node("tanh", TANH, weights=J, source_var="tanh_op/r", target_var="li_op/r_in",
                        input_var="li_op/I_ext", output_var="li_op/v", node_vars=node_vars or None, op="li_op")
    return net


# --- the documented example ------------------------------------------------------------

def test_seed_example_verbatim_matches_hand_written_euler():
    import matplotlib
    matplotlib.use("Agg")
    # --- the example of the issue, as a user types it (plus the seed) ---
    from modelc import Network
    import numpy as np
    np.random.seed(42)
    model = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
    N = 100
    J = np.random.randn(N, N)
    net = Network(dt=1e-3, device="cpu")
    net.add_diffeq_node("tanh", model, weights=J, source_var="tanh_op/r",
                        target_var="li_op/r_in", input_var="li_op/I_ext", output_var="li_op/v")
    obs = net.run(inputs=np.ones((10000, N)))
    ax = obs.plot("out")
    # ---
    assert obs["out"].shape == (10000, 100)
    assert obs[("tanh", "li_op/v")] is obs["out"]
    close(obs["out"], euler_tanh(J, np.ones((10000, N)), 1e-3))
    np.testing.assert_allclose(obs.times, (np.arange(10000) + 1) * 1e-3, rtol=1e-12)
    assert len(ax.lines) == 100
    import matplotlib.pyplot as plt
    plt.close("all")


def test_weights_are_never_transposed():
    # One directed connection: unit 1 drives unit 0, nothing else.
    J = np.zeros((2, 2))
    J[0, 1] = 1.0
    net = tanh_network(J, v=np.array([0.0, 1.0]))
    obs = net.run(steps=50)
    close(obs["out"], euler_tanh(J, np.zeros((50, 2)), 1e-3, v0=[0.0, 1.0]))
    assert obs["out"][-1, 0] > 0.01  # unit 0 moved, driven by unit 1


# --- several populations ---------------------------------------------------------------

def two_population_reference(u, J1, W_in, W_ts, W_st, tau1, dt, tau2=5.0, s=2.0, v2_0=None):
    n1, n2 = J1.shape[0], W_ts.shape[0]
    v1, v2 = np.zeros(n1), (np.zeros(n2) if v2_0 is None else v2_0.copy())
    out1, out2 = np.empty((len(u), n1)), np.empty((len(u), n2))
    for step in range(len(u)):
        r1, r2 = np.tanh(v1), sigmoid_rate(v2, s=s)
        dv1 = -v1 / tau1 + J1 @ r1 + W_in @ u[step] + W_st @ r2   # two edges summed into I_ext
        dv2 = -v2 / tau2 + W_ts @ r1
        v1, v2 = v1 + dt * dv1, v2 + dt * dv2
        out1[step], out2[step] = v1, v2
    return out1, out2


def test_two_populations_with_feedback_match_hand_written_loop():
    rng = np.random.default_rng(1)
    n_in, n1, n2, T, dt = 3, 20, 10, 800, 1e-2
    J1 = rng.normal(0, 1.5 / np.sqrt(n1), (n1, n1))
    W_in, W_ts, W_st = rng.normal(size=(n1, n_in)), rng.normal(size=(n2, n1)), rng.normal(size=(n1, n2))
    tau1 = rng.uniform(5, 15, n1)
    v2_0 = rng.normal(size=n2)
    u = np.sin(np.linspace(0, 10, T))[:, None] * np.array([1.0, -0.5, 0.25])

    net = Network(dt=dt)
    net.add_func_node("inp", n_in, "identity")
    net.add_diffeq_node("exc", TANH, weights=J1, source_var="tanh_op/r", target_var="li_op/r_in",
                        input_var="li_op/I_ext", output_var="tanh_op/r", node_vars={"li_op/tau": tau1})
    net.add_diffeq_node("sig", SIGMOID, N=n2, input_var="li_op/I_ext", output_var="sigmoid_op/r", op="li_op",
                        node_vars={"tau": 5.0, "s": 2.0, "v": v2_0})
    net.add_edge("inp", "exc", W_in)
    net.add_edge("exc", "sig", W_ts)
    net.add_edge("sig", "exc", W_st, feedback=True)
    obs = net.run(u, record_vars=[("exc", "li_op/v"), ("sig", "v")])

    ref1, ref2 = two_population_reference(u, J1, W_in, W_ts, W_st, tau1, dt, v2_0=v2_0)
    close(obs[("exc", "li_op/v")], ref1)
    close(obs[("sig", "v")], ref2)
    close(obs["out"], sigmoid_rate(ref2, s=2.0))  # the output node: sig (the loop edge is marked feedback)


def test_two_incoming_edges_are_summed_and_dict_inputs():
    rng = np.random.default_rng(2)
    n, T, dt = 6, 300, 1e-2
    Wa, Wb = rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
    ua, ub = rng.normal(size=(T, 2)), rng.normal(size=(T, 3))
    net = Network(dt=dt)
    net.add_func_node("a", 2, "identity")
    net.add_func_node("b", 3, "tanh")
    net.add_diffeq_node("pop", TANH, N=n, input_var="li_op/I_ext", output_var="li_op/v")
    net.add_edge("a", "pop", Wa)
    net.add_edge("b", "pop", Wb)
    obs = net.run({"a": ua, "b": ub})
    v, ref = np.zeros(n), np.empty((T, n))
    for step in range(T):
        v = v + dt * (-v / 10.0 + Wa @ ua[step] + Wb @ np.tanh(ub[step]))
        ref[step] = v
    close(obs["out"], ref)
    with pytest.raises(WiringError, match="several nodes take external input"):
        net.run(ua)


@pytest.mark.parametrize("activation, reference", [
    ("identity", lambda x: x),
    ("relu", lambda x: np.maximum(x, 0)),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ("softmax", lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    ("log_softmax", lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
])
def test_function_node_readout(activation, reference):
    # inp (identity, 4) -> out (activation, 3): out row k = f(W @ u[k]); the readout learns its size from W.
    rng = np.random.default_rng(3)
    u, W = rng.normal(size=(20, 4)), rng.normal(size=(3, 4))
    net = Network(dt=0.1)
    net.add_func_node("inp", 4, "identity")
    net.add_func_node("out", 3, activation)
    net.add_edge("inp", "out", W)
    obs = net.run(u)
    assert obs["out"].shape == (20, 3)
    close(obs["out"], reference(u @ W.T))


# --- node_vars, sampling, records, continuing ------------------------------------------

def test_node_vars_per_unit_arrays_and_scalars():
    rng = np.random.default_rng(4)
    N, T, dt = 8, 400, 1e-2
    J = rng.normal(0, 1 / np.sqrt(N), (N, N))
    tau, eta, v0 = rng.uniform(2, 20, N), rng.normal(size=N), rng.normal(size=N)
    net = tanh_network(J, dt=dt, tau=tau, eta=eta, v=v0, k=0.7)
    u = rng.normal(size=(T, N))
    obs = net.run(u)
    close(obs["out"], euler_tanh(J, u, dt, tau=tau, k=0.7, eta=eta, v0=v0))
    module = net.compile()
    assert module.PARAM_SHAPES["tanh/li_op/tau"] == "vector"
    assert module.PARAM_SHAPES["tanh/li_op/k"] == "scalar"  # a number stays one folded scalar
    assert module.PARAM_SHAPES["tanh_weights"] == "matrix"
    np.testing.assert_array_equal(net.get_var("tanh", "tau"), tau)
    assert net.get_var("tanh", "k") == 0.7
    with pytest.raises(ValueError):
        net.get_var("tanh", "tau")[0] = 1.0  # read-only view


def test_sampling_steps_rows_and_times():
    rng = np.random.default_rng(5)
    J = rng.normal(0, 0.5, (5, 5))
    u = rng.normal(size=(1000, 5))
    full = euler_tanh(J, u, 1e-3)
    obs = tanh_network(J).run(u, sampling_steps=7)
    assert obs["out"].shape == (1000 // 7, 5)
    close(obs["out"], full[6::7][: 1000 // 7])  # row k = after step (k + 1) * 7
    np.testing.assert_allclose(obs.times, np.arange(1, 1000 // 7 + 1) * 7e-3, rtol=1e-12)


def test_record_vars_with_population_mean():
    rng = np.random.default_rng(6)
    J = rng.normal(0, 0.5, (7, 7))
    u = rng.normal(size=(300, 7))
    full = euler_tanh(J, u, 1e-3)
    obs = tanh_network(J).run(u, sampling_steps=3,
                              record_vars=[("tanh", "tanh_op/r"), ("tanh", "v", True), ("tanh", "r_in")])
    close(obs[("tanh", "tanh_op/r")], np.tanh(full[2::3]))
    close(obs[("tanh", "v")], full[2::3].mean(axis=1))       # the mean, as requested
    close(obs[("tanh", "v", True)], full[2::3].mean(axis=1))
    close(obs[("tanh", "r_in")], np.tanh(full[2::3]) @ J.T)
    assert obs[("tanh", "v")].shape == (100,)
    assert "out" in obs and ("tanh", "nope") not in obs
    with pytest.raises(UnknownVariableError):
        obs[("tanh", "nope")]
    with pytest.raises(UnknownVariableError, match="tanh_op/r"):
        tanh_network(J).run(u, record_vars=[("tanh", "tanh_op/rr")])


def test_successive_runs_continue_from_last_state():
    rng = np.random.default_rng(7)
    J = rng.normal(0, 1.0, (6, 6))
    u = rng.normal(size=(900, 6))
    net = tanh_network(J)
    first, second = net.run(u[:400]), net.run(u[400:])
    whole = euler_tanh(J, u, 1e-3)
    close(np.concatenate([first["out"], second["out"]]), whole)
    np.testing.assert_allclose(second.times, (np.arange(400, 900) + 1) * 1e-3, rtol=1e-12)
    close(net.get_var("tanh", "li_op/v"), whole[-1])
    net.reset()
    close(net.run(u[:400])["out"], whole[:400])
    net.set_var("tanh", "v", np.ones(6))  # the next run starts here
    close(net.run(u[:10])["out"], euler_tanh(J, u[:10], 1e-3, v0=np.ones(6)))


# --- sweeps ---------------------------------------------------------------------------

def test_sweep_grid_and_zip_equal_separate_runs():
    from modelc.runtime import compiler
    rng = np.random.default_rng(8)
    N, T = 5, 300
    J = rng.normal(0, 1.0, (N, N))
    u = rng.normal(size=(T, N))
    net = tanh_network(J)
    net.run(u)  # compile the plain network first
    before = len(compiler._loaded)
    obs = net.sweep({"li_op/tau": [5.0, 10.0, 20.0], "li_op/k": [0.5, 1.0]}, inputs=u, grid=True)
    assert len(compiler._loaded) <= before + 1  # one compilation for all B sets
    assert obs["out"].shape == (T, 6, N)
    assert obs.sweep == [{"li_op/tau": t, "li_op/k": k} for t in (5.0, 10.0, 20.0) for k in (0.5, 1.0)]
    start = net.get_var("tanh", "v").copy()
    for b, point in enumerate(obs.sweep):
        close(obs["out"][:, b], euler_tanh(J, u, 1e-3, tau=point["li_op/tau"], k=point["li_op/k"], v0=start))
    close(net.get_var("tanh", "v"), start)  # a sweep leaves the network's state alone

    zipped = net.sweep({"tau": [5.0, 20.0], ("tanh", "eta"): [0.1, -0.1], "li_op/v": [0.5, -0.5]},
                       inputs=u[:50], grid=False, record_vars=[("tanh", "v", True)])
    assert zipped["out"].shape == (50, 2, N) and zipped[("tanh", "v")].shape == (50, 2)
    per_set = rng.normal(size=(40, 2, N))  # one input per parameter set
    obs = net.sweep({"tau": [5.0, 20.0]}, inputs=per_set)
    for b, tau in enumerate([5.0, 20.0]):
        close(obs["out"][:, b], euler_tanh(J, per_set[:, b], 1e-3, tau=tau, v0=start))
    for b, (tau, eta, v0) in enumerate([(5.0, 0.1, 0.5), (20.0, -0.1, -0.5)]):
        close(zipped["out"][:, b], euler_tanh(J, u[:50], 1e-3, tau=tau, eta=eta, v0=np.full(N, v0)))
    with pytest.raises(ShapeError, match="equal lengths"):
        net.sweep({"tau": [1.0, 2.0], "k": [1.0]}, inputs=u, grid=False)


# --- errors ---------------------------------------------------------------------------

def test_shape_errors_name_the_expected_shape():
    net = Network(dt=1e-3)
    with pytest.raises(ShapeError, match=r"\(N, N\) = \(3, 3\)"):
        net.add_diffeq_node("a", TANH, weights=np.ones((3, 4)), source_var="tanh_op/r", target_var="li_op/r_in")
    with pytest.raises(ShapeError, match=r"\(5, 5\)"):
        net.add_diffeq_node("a", TANH, weights=np.ones((4, 4)), N=5, source_var="tanh_op/r", target_var="li_op/r_in")
    net.add_diffeq_node("a", TANH, weights=np.eye(4), source_var="tanh_op/r", target_var="li_op/r_in",
                        input_var="li_op/I_ext", output_var="li_op/v")
    net.add_diffeq_node("b", TANH, N=3, input_var="li_op/I_ext", output_var="li_op/v")
    with pytest.raises(ShapeError, match=r"(?s)\(n_target, n_source\) = \(3, 4\).*transposed"):
        net.add_edge("a", "b", np.ones((4, 3)))
    with pytest.raises(ShapeError, match=r"\(4,\)"):
        net.set_var("a", "li_op/tau", np.ones(3))
    net.add_edge("a", "b", np.ones((3, 4)))
    with pytest.raises(ShapeError, match=r"\(T, 4\)"):
        net.run(np.ones((10, 3)))
    with pytest.raises(ShapeError, match=r"\(4, 4\)"):
        net.set_var("a", "weights", np.ones((3, 3)))


def test_unknown_variables_and_wiring_errors():
    net = Network(dt=1e-3)
    with pytest.raises(UnknownVariableError) as info:
        net.add_diffeq_node("a", TANH, N=3, input_var="li_op/I_ex")
    assert "did you mean 'li_op/I_ext'" in str(info.value)
    with pytest.raises(WiringError, match="input"):
        net.add_diffeq_node("a", TANH, N=3, input_var="li_op/tau")
    with pytest.raises(UnknownVariableError, match="ambiguous"):
        net.add_diffeq_node("a", TANH, N=3, node_vars={"v": 1.0})  # li_op/v or tanh_op/v
    with pytest.raises(InvalidValueError, match="activation"):
        net.add_func_node("f", 3, "tanhh")
    net.add_diffeq_node("a", TANH, N=3, input_var="li_op/I_ext", output_var="li_op/v")
    with pytest.raises(UnknownVariableError, match="no node 'b'"):
        net.add_edge("a", "b", np.ones((3, 3)))
    with pytest.raises(InvalidValueError, match="computed by an equation"):
        net.set_var("a", "tanh_op/r", 1.0)
    with pytest.raises(BackendUnavailableError, match=r"modelc\[cupy\]|CuPy backend|GPU"):
        Network(dt=1e-3, device="cuda")


def test_dtype_and_method_are_checked_against_the_compilers_lists_when_given():
    assert Network(dt=1e-3, dtype=np.float32).dtype == "float32"
    with pytest.raises(UnsupportedFeatureError, match="unsupported dtype 'float16'"):
        Network(dt=1e-3, dtype="float16")
    net = Network(dt=1e-3)
    with pytest.raises(UnknownMethodError, match="did you mean 'rk4'"):
        net.add_diffeq_node("a", TANH, N=3, method="rk5")  # when the node is added, not at its first run
    assert "a" not in net


def test_sweep_values_that_do_not_stack_are_a_clear_error():
    net = tanh_network(np.eye(3))
    with pytest.raises(InvalidValueError, match="all numbers or all arrays of 3"):
        net.sweep({"tau": [1.0, np.ones(3)]}, steps=2)


def test_public_names_of_the_network_package():
    import modelc
    from modelc.runtime import network
    assert modelc.Network is network.Network and modelc.Observer is network.Observer
    assert {"identity", "tanh", "softmax"} <= set(network.ACTIVATIONS)


def test_non_finite_state_raises_naming_the_variable():
    net = tanh_network(np.zeros((2, 2)), tau=-1e-3, v=1.0)  # doubles every step
    with pytest.raises(NonFiniteError, match="tanh/li_op/v"), np.errstate(over="ignore", invalid="ignore"):
        net.run(steps=5000)


def test_module_is_shared_across_weight_values_and_sizes():
    a = tanh_network(np.eye(3))
    b = tanh_network(np.random.default_rng(0).normal(size=(50, 50)))
    assert a.compile() is b.compile()  # the key holds the structure, never weights or N
    assert "tanh_weights" in a.compile().PARAMS


# --- Observer -------------------------------------------------------------------------

def test_observer_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(9)
    net = tanh_network(rng.normal(size=(4, 4)))
    obs = net.run(rng.normal(size=(60, 4)), sampling_steps=2, record_vars=[("tanh", "r", False), ("tanh", "v", True)])
    path = obs.save(tmp_path / "run")
    back = Observer.load(path)
    assert back == obs and back.keys() == obs.keys()
    np.testing.assert_array_equal(back[("tanh", "v")], obs[("tanh", "v")])
    np.testing.assert_array_equal(back.times, obs.times)
    swept = net.sweep({"tau": [1.0, 2.0]}, inputs=np.zeros((10, 4)))
    back = Observer.load(swept.save(tmp_path / "sweep.npz"))
    assert back == swept and back.sweep == [{"tau": 1.0}, {"tau": 2.0}]
    assert "sweep: 2 parameter sets" in repr(back) and "(population mean)" in repr(obs)


def test_observer_plots_and_progress_bar(capsys):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    net = tanh_network(np.eye(3) * 0.5)
    obs = net.run(np.ones((2100, 3)), verbose=True, record_vars=[("tanh", "r")])
    err = capsys.readouterr().err
    try:
        import tqdm  # noqa: F401  (tqdm draws its own bar)
        assert "2100" in err
    except ImportError:
        assert err.count("\r") == 4 and "2100/2100 steps" in err  # drawn at the start and once per chunk
    assert len(obs.plot(("tanh", "r"), x="out").lines) == 3
    assert obs.matshow("out").get_images()
    swept = net.sweep({"tau": [1.0, 2.0]}, inputs=np.ones((10, 3)))
    assert len(swept.plot("out").lines) == 6
    plt.close("all")


def test_graph_editing_get_var_and_set_var():
    rng = np.random.default_rng(10)
    J = rng.normal(0, 0.5, (4, 4))
    net = tanh_network(J, v=np.arange(4.0))
    close(net.get_var("tanh", "tanh_op/r"), np.tanh(np.arange(4.0)))      # computed from the state
    close(net.get_var("tanh", "r_in"), J @ np.tanh(np.arange(4.0)))
    np.testing.assert_array_equal(net.get_var("tanh", "weights"), J)
    net.set_var("tanh", "tau", np.full(4, 5.0))                              # a scalar becomes per unit
    assert net.compile().PARAM_SHAPES["tanh/li_op/tau"] == "vector"
    u = rng.normal(size=(50, 4))
    close(net.run(u)["out"], euler_tanh(J, u, 1e-3, tau=5.0, v0=np.arange(4.0)))
    net.add_func_node("readout", 2, "tanh")
    W = rng.normal(size=(2, 4))
    net.add_edge("tanh", "readout", W)
    assert net.nodes == ["tanh", "readout"] and net.edges == [("tanh", "readout")]
    assert net.n_in == 4 and net.n_out == 2
    net.reset()
    close(net.run(u)["out"], np.tanh(euler_tanh(J, u, 1e-3, tau=5.0, v0=np.arange(4.0)) @ W.T))
    np.testing.assert_array_equal(net.pop_edge("tanh", "readout").weights, W)
    net.pop_node("readout")
    net.reset()
    close(net.run(u)["out"], euler_tanh(J, u, 1e-3, tau=5.0, v0=np.arange(4.0)))


def test_to_dataframe():
    pd = pytest.importorskip("pandas")
    net = tanh_network(np.eye(3))
    obs = net.run(np.ones((5, 3)), record_vars=[("tanh", "v", True)])
    frame = obs.to_dataframe("out")
    assert isinstance(frame, pd.DataFrame) and frame.shape == (5, 3)
    np.testing.assert_allclose(frame.index, obs.times)
    assert obs.to_dataframe(("tanh", "v")).shape == (5, 1)
    assert net.sweep({"tau": [1.0, 2.0]}, np.ones((5, 3))).to_dataframe("out").shape == (5, 6)


# --- one call at a time ------------------------------------------------------------------

class _HeldInput:
    """An input array whose reading waits until `release` is set: a run that is in progress."""

    def __init__(self, rows):
        self.rows, self.reading, self.release = rows, threading.Event(), threading.Event()

    def __array__(self, dtype=None, copy=None):
        self.reading.set()
        assert self.release.wait(30)
        return self.rows if dtype is None else self.rows.astype(dtype)


def test_a_second_thread_cannot_change_a_network_while_it_runs():
    rng = np.random.default_rng(11)
    J, u = rng.normal(0, 0.5, (3, 3)), rng.normal(size=(40, 3))
    net = tanh_network(J)
    held = _HeldInput(u)
    first = {}
    runner = threading.Thread(target=lambda: first.setdefault("obs", net.run(held)))
    runner.start()
    try:
        assert held.reading.wait(30)
        for call in (lambda: net.run(u), lambda: net.sweep({"tau": [1.0, 2.0]}, u), net.reset,
                     lambda: net.set_var("tanh", "tau", 3.0), lambda: net.pop_node("tanh")):
            with pytest.raises(NetworkBusyError) as info:
                call()
            assert info.value.code == "MC208" and "run() is in progress on this Network" in info.value.message
        assert net.time == 0.0 and net.get_var("tanh", "tau") == 10.0  # reading is fine: the state before the run
    finally:
        held.release.set()
        runner.join()
    close(first["obs"]["out"], euler_tanh(J, u, 1e-3))
    assert net.time == pytest.approx(40 * 1e-3)  # one run counted, not two
    close(net.run(u)["out"], euler_tanh(J, np.vstack([u, u]), 1e-3)[40:])  # free again after the run


def test_a_failed_run_frees_the_network():
    net = tanh_network(np.zeros((2, 2)))
    with pytest.raises(ShapeError):
        net.run(np.ones((5, 3)))
    assert net.run(np.ones((5, 2)))["out"].shape == (5, 2)


# --- run arguments that cannot make a run ---------------------------------------------------

def test_sampling_steps_larger_than_steps_is_a_clear_error():
    net = tanh_network(np.zeros((2, 2)), tau=-1e-3, v=1.0)  # NaN within the run: nothing recorded to find it in
    with pytest.raises(InvalidValueError, match=r"sampling_steps \(4000\) is larger than steps \(3000\)"):
        net.run(steps=3000, sampling_steps=4000)
    assert net.time == 0.0


@pytest.mark.parametrize("y0, inputs, name", [
    ({"li_op/v": np.zeros(0)}, {}, "initial value of state 'li_op/v' has shape (0,)"),
    ({}, {"li_op/I_ext": np.zeros((5, 0))}, "input 'li_op/I_ext' has shape (5, 0)"),
    ({"li_op/v": np.zeros((0, 3))}, {}, "initial value of state 'li_op/v' has shape (0, 3)"),
])
def test_arrays_with_an_axis_of_length_0_are_a_clear_error(y0, inputs, name):
    module = compile_model(TANH)
    with pytest.raises(ShapeError) as info:
        module.run(y0, {}, inputs, dt=1e-3, steps=5)
    assert info.value.message == f"{name}, with an axis of length 0"


def test_records_too_big_for_memory_are_a_clear_error_naming_their_size():
    module = compile_model(TANH, coupling=dict(source_var="tanh_op/r", target_var="li_op/r_in"))
    for rows, size in ((10**12, "42.6 PiB"), (10**18, "4.16e+04 EiB")):  # NumPy: MemoryError; too big to address
        with pytest.raises(InvalidValueError) as info:
            module._new_records(["li_op/v", "tanh_op/r"], {"": (3, 1000)}, rows)
        assert info.value.message == (f"the records need {size} ({rows} rows of 'li_op/v', 'tanh_op/r'), more memory "
                                      "than can be allocated")
        assert "sampling_steps" in info.value.hint
    assert module._new_records(["li_op/v"], {"": (2,)}, 3)["li_op/v"].shape == (3, 2)


# --- Observer files ---------------------------------------------------------------------------

def test_an_interrupted_observer_save_leaves_the_old_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(12)
    old = Observer(0.1, 1, {"out": rng.normal(size=(5, 3))})
    path = old.save(tmp_path / "run.npz")
    real_open = zipfile.ZipFile.open

    def interrupted(self, name, mode="r", **kwargs):  # Ctrl-C after the first array of the archive
        if mode == "w" and name != "meta.npy":
            raise KeyboardInterrupt
        return real_open(self, name, mode, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Observer(0.1, 1, {"out": np.zeros((500, 3))}).save(path)
    monkeypatch.undo()
    assert Observer.load(path) == old
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]


def _observer_file(path, meta=None, **arrays):
    np.savez(path, **({"meta": np.array(json.dumps(meta))} if meta is not None else {}), **arrays)


HEADER = {"format": "modelc-observer-1", "dt": 0.1, "sampling_steps": 1, "keys": ["out"], "means": [],
          "aliases": [], "sweep": None}


@pytest.mark.parametrize("write", [
    lambda p: p.write_text("not an archive"),                                     # ValueError (pickle)
    lambda p: p.write_bytes(b""),                                                  # EOFError
    lambda p: np.save(p.with_suffix(".npy"), np.ones(3)) or p.with_suffix(".npy").rename(p),  # an .npy file
    lambda p: _observer_file(p, times=np.ones(3)),                                # no meta: KeyError
    lambda p: np.savez(p, meta=np.array("{oops")),                                 # JSONDecodeError
    lambda p: _observer_file(p, {"format": "modelc-observer-1"}),                 # KeyError
    lambda p: _observer_file(p, {**HEADER, "means": [3]}, times=np.ones(3), record_0=np.ones(3)),  # IndexError
    lambda p: _observer_file(p, HEADER, times=np.ones(3)),                        # a record missing
    lambda p: _observer_file(p, {**HEADER, "aliases": [1]}, times=np.ones(3), record_0=np.ones(3)),  # TypeError
    lambda p: p.write_bytes(Observer(0.1, 1, {"out": np.ones((3, 2))}).save(p).read_bytes()[:200]),  # BadZipFile
], ids=["text", "empty", "npy", "no_meta", "bad_json", "no_keys", "bad_index", "no_record", "bad_alias", "cut_short"])
def test_loading_a_malformed_observer_file_is_a_clear_error_naming_it(tmp_path, write):
    path = tmp_path / "run.npz"
    write(path)
    with pytest.raises(InvalidValueError) as info:
        Observer.load(path)
    assert info.value.code == "MC202"
    assert info.value.message == f"{path} is not an Observer file written by modelc, or it is damaged"
