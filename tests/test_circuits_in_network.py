"""Circuits as Network nodes, modelc.simulate, and inputs that add up with edges (issue 14).

The reference for circuits is Jansen-Rit written out by hand from its paper form (the six ODEs
of models/model_templates/neural_mass_models/jansenrit.yaml, eight with the two potentials
of the pyramidal cells kept apart), integrated by forward Euler in a NumPy loop here: per
population a second-order kernel v' = x, x' = h*m_in/tau - 2x/tau - v/tau^2, rates
m = m_max/(1 + exp(s*(v_thr - v))), and the edges C1..C4 = 135, 108, 33.75, 33.75. The other
references are Euler loops of the seed model (v' = -v/tau + k*r_in + I_ext + eta, r = tanh(v)).
A record row is the value after its step.
"""
from __future__ import annotations

import numpy as np
import pytest

import modelc
from modelc import Network
from modelc.errors import InvalidValueError, UnknownVariableError, WiringError

JRC = "model_templates.neural_mass_models.jansenrit.JRC"
TANH = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
TOL = dict(rtol=1e-9, atol=1e-9)


def jansen_rit(u, dt, n=1, m_max=5.0, v_thr=6.0, extra_pc_m_in=None):
    """Euler loop of n independent Jansen-Rit columns; u (steps, n) the external rate of the
    pyramidal cells; extra_pc_m_in(step, states) adds into their excitatory m_in.
    Returns {name: (steps, n)} of every potential and the pyramidal rate."""
    h_e, tau_e, h_i, tau_i, s = 3.25, 0.01, -22.0, 0.02, 0.56
    c1, c2, c3, c4 = 135.0, 108.0, 33.75, 33.75
    y = {name: np.zeros(n) for name in ("ve", "xe", "vi", "xi", "v_ein", "x_ein", "v_iin", "x_iin")}
    out = {name: np.empty((len(u), n)) for name in ("pc/rpo_e_ext/v", "pc/rpo_i/v", "ein/rpo_e/v", "iin/rpo_e/v",
                                                     "pc/pro/m_out")}

    def rate(v):
        return m_max / (1.0 + np.exp(s * (v_thr - v)))

    def kernel(v, x, m_in, h, tau):
        return x, h * m_in / tau - 2.0 * x / tau - v / tau ** 2

    for step in range(len(u)):
        m_pc, m_ein, m_iin = rate(y["ve"] + y["vi"]), rate(y["v_ein"]), rate(y["v_iin"])
        m_in_e = c2 * m_ein + (extra_pc_m_in(step, y) if extra_pc_m_in else 0.0)
        d = {}
        d["ve"], d["xe"] = kernel(y["ve"], y["xe"], m_in_e + u[step], h_e, tau_e)
        d["vi"], d["xi"] = kernel(y["vi"], y["xi"], c4 * m_iin, h_i, tau_i)
        d["v_ein"], d["x_ein"] = kernel(y["v_ein"], y["x_ein"], c1 * m_pc, h_e, tau_e)
        d["v_iin"], d["x_iin"] = kernel(y["v_iin"], y["x_iin"], c3 * m_pc, h_e, tau_e)
        y = {name: y[name] + dt * d[name] for name in y}
        out["pc/rpo_e_ext/v"][step], out["pc/rpo_i/v"][step] = y["ve"], y["vi"]
        out["ein/rpo_e/v"][step], out["iin/rpo_e/v"][step] = y["v_ein"], y["v_iin"]
        out["pc/pro/m_out"][step] = rate(y["ve"] + y["vi"])
    return out


# --- circuits as nodes -------------------------------------------------------------------

def test_a_circuit_is_a_node_of_n_copies_with_node_vars_and_record_vars_on_paths():
    steps, dt, n = 1500, 1e-4, 3
    u = np.array([120.0, 220.0, 320.0])
    net = Network(dt=dt)
    net.add_diffeq_node("jrc", JRC, output_var="pc/pro/m_out", N=n,
                        node_vars={"pc/rpo_e_ext/u": u, "all/pro/v_thr": 5.5})
    obs = net.run(steps=steps, record_vars=[("jrc", "pc/rpo_e_ext/v"), ("jrc", "pc/rpo_i/v"), ("jrc", "ein/rpo_e/v")])
    ref = jansen_rit(np.broadcast_to(u, (steps, n)), dt, n, v_thr=5.5)
    for name in ("pc/rpo_e_ext/v", "pc/rpo_i/v", "ein/rpo_e/v"):
        np.testing.assert_allclose(obs[("jrc", name)], ref[name], **TOL)
    np.testing.assert_allclose(obs["out"], ref["pc/pro/m_out"], **TOL)
    assert net.get_var("jrc", "iin/pro/v_thr") == 5.5 and net.get_var("jrc", "pc/pro/v_thr") == 5.5
    assert set(net.state["jrc"]) >= {"pc/rpo_e_ext/v", "ein/rpo_e/x", "iin/rpo_e/v"}


def test_a_circuit_node_driven_by_run_inputs_and_fed_by_an_edge():
    """One column's pyramidal rate drives another's excitatory m_in through an edge (adding to its
    circuit's own edge ein -> pc), while run(inputs=...) drives both columns' external rate u."""
    steps, dt = 1200, 1e-4
    u = 220.0 + 60.0 * np.sin(np.arange(steps) * dt * 2 * np.pi * 8.0)
    net = Network(dt=dt)
    net.add_diffeq_node("a", JRC, "pc/rpo_e_ext/u", "pc/pro/m_out", N=1)
    net.add_diffeq_node("b", JRC, "pc/rpo_e_ext/u", "pc/pro/m_out", N=1)
    net.add_edge("a", "b", np.array([[20.0]]), target_var="pc/rpo_e_ext/m_in")
    obs = net.run({"a": u[:, None], "b": np.full((steps, 1), 150.0)}, record_vars=[("a", "pc/pro/m_out")])
    ref_a = jansen_rit(u[:, None], dt)
    rate_a = np.vstack([[[5.0 / (1.0 + np.exp(0.56 * 6.0))]], ref_a["pc/pro/m_out"][:-1]])  # as steps start
    ref_b = jansen_rit(np.full((steps, 1), 150.0), dt, extra_pc_m_in=lambda step, y: 20.0 * rate_a[step])
    np.testing.assert_allclose(obs[("a", "pc/pro/m_out")], ref_a["pc/pro/m_out"], **TOL)
    np.testing.assert_allclose(obs["out"], ref_b["pc/pro/m_out"], **TOL)


def test_a_circuit_of_circuits_is_a_node_too(tmp_path):
    """Two columns in one circuit (PyRates' `circuits:`), c1's pyramidal rate into c2's excitatory
    m_in: the same numbers as the network of two circuit nodes above."""
    (tmp_path / "columns.yaml").write_text(
        "two:\n  base: CircuitTemplate\n  circuits: {c1: %s, c2: %s}\n  edges:\n"
        "    - [c1/pc/pro/m_out, c2/pc/rpo_e_ext/m_in, null, {weight: 20.0}]\n" % (JRC, JRC))
    steps, dt = 800, 1e-4
    net = Network(dt=dt)
    net.add_diffeq_node("cols", f"{tmp_path / 'columns.yaml'}:two", output_var="c2/pc/pro/m_out", N=2,
                        node_vars={"c1/pc/rpo_e_ext/u": np.array([220.0, 300.0]), "c2/pc/rpo_e_ext/u": 150.0,
                                   "all/pro/v_thr": 6.5})
    obs = net.run(steps=steps, record_vars=[("cols", "c1/pc/pro/m_out")])
    ref_1 = jansen_rit(np.broadcast_to([220.0, 300.0], (steps, 2)), dt, n=2, v_thr=6.5)
    rate_1 = np.vstack([np.full((1, 2), 5.0 / (1.0 + np.exp(0.56 * 6.5))), ref_1["pc/pro/m_out"][:-1]])
    ref_2 = jansen_rit(np.full((steps, 2), 150.0), dt, n=2, v_thr=6.5,
                       extra_pc_m_in=lambda step, y: 20.0 * rate_1[step])
    np.testing.assert_allclose(obs[("cols", "c1/pc/pro/m_out")], ref_1["pc/pro/m_out"], **TOL)
    np.testing.assert_allclose(obs["out"], ref_2["pc/pro/m_out"], **TOL)


def test_circuit_names_are_node_op_var_paths_with_clear_errors():
    net = Network(dt=1e-4)
    net.add_diffeq_node("jrc", JRC, N=2)
    with pytest.raises(UnknownVariableError, match="'pc/rpo_e/v' is not a variable of node 'x'") as info:
        net.add_diffeq_node("x", JRC, N=1, output_var="pc/rpo_e/v")
    assert "pc/rpo_e_ext/v" in info.value.hint and "'rpo_e/v'" not in info.value.hint
    with pytest.raises(UnknownVariableError, match="no node of circuit 'y' has 'rpo_x/h'"):
        net.add_diffeq_node("y", JRC, N=1, node_vars={"all/rpo_x/h": 1.0})
    with pytest.raises(WiringError, match="is an input"):
        net.add_diffeq_node("z", JRC, N=1, output_var="pc/rpo_e_ext/u")


# --- modelc.simulate ------------------------------------------------------------------------

def test_simulate_runs_a_circuit_like_pyrates_and_matches_the_hand_written_loop():
    steps, dt = 2000, 1e-4
    u = np.random.default_rng(0).uniform(120.0, 320.0, steps)
    obs = modelc.simulate(JRC, T=steps * dt, dt=dt, inputs={"pc/rpo_e_ext/u": u},
                          outputs={"v_e": "pc/rpo_e_ext/v", "v_i": "pc/rpo_i/v"}, method="euler",
                          sampling_step_size=10 * dt)
    ref = jansen_rit(u[:, None], dt)
    np.testing.assert_allclose(obs["v_e"], ref["pc/rpo_e_ext/v"][9::10], **TOL)
    np.testing.assert_allclose(obs["v_i"], ref["pc/rpo_i/v"][9::10], **TOL)
    np.testing.assert_allclose(obs.times, np.arange(1, 201) * 10 * dt)
    frame = obs.to_dataframe(None)
    assert list(frame.columns) == ["v_e", "v_i"] and frame.index.name == "time"
    np.testing.assert_allclose(frame["v_e"].to_numpy(), obs["v_e"][:, 0])


def test_simulate_defaults_constants_and_errors():
    dt = 1e-4
    obs = modelc.simulate(JRC, T=0.05, dt=dt, inputs={"pc/rpo_e_ext/u": 150.0}, node_vars={"all/pro/m_max": 4.0})
    ref = jansen_rit(np.full((500, 1), 150.0), dt, m_max=4.0)
    assert len(obs.keys()) == 8  # every state
    np.testing.assert_allclose(obs["ein/rpo_e/v"], ref["ein/rpo_e/v"], **TOL)
    node = modelc.simulate(TANH, T=1.0, dt=0.1, inputs={"li_op/I_ext": np.ones(10)}, outputs=["li_op/v"])
    np.testing.assert_allclose(node["li_op/v"][:, 0], 10 * (1 - 0.99 ** np.arange(1, 11)), rtol=1e-12)
    with pytest.raises(InvalidValueError, match="T = 0.05005 is not a whole number >= 1 of steps"):
        modelc.simulate(JRC, T=0.05005, dt=dt)
    with pytest.raises(InvalidValueError, match="sampling_step_size = 0.00015 is not a whole number"):
        modelc.simulate(JRC, T=0.05, dt=dt, sampling_step_size=1.5e-4)


def test_to_dataframe_of_every_record_names_units_when_there_are_several():
    net = Network(dt=0.1)
    net.add_diffeq_node("p", TANH, "li_op/I_ext", "li_op/v", N=2)
    obs = net.run(np.ones((3, 2)), record_vars=[("p", "tanh_op/r", True)])
    frame = obs.to_dataframe(None)
    assert list(frame.columns) == [("out", 0), ("out", 1), ("('p', 'tanh_op/r', True)", 0)]
    np.testing.assert_allclose(frame[("out", 1)].to_numpy(), obs["out"][:, 1])


# --- inputs from outside and from edges add up -------------------------------------------------

def test_feedback_edge_into_an_input_driven_node_adds_up_with_the_input():
    """A is driven by run(inputs=...) and fed back by B (RectiPy's FeedbackNetwork): I_A is the
    input row plus W_BA @ r_B, r_B being B's output as the step starts, i.e. after the last step."""
    rng = np.random.default_rng(3)
    n_a, n_b, steps, dt = 3, 2, 300, 1e-2
    W_ab, W_ba = rng.normal(size=(n_b, n_a)), rng.normal(size=(n_a, n_b))
    u = rng.normal(size=(steps, n_a))
    net = modelc.FeedbackNetwork(dt=dt)
    net.add_diffeq_node("A", TANH, "li_op/I_ext", "tanh_op/r", N=n_a)
    net.add_diffeq_node("B", TANH, "li_op/I_ext", "tanh_op/r", N=n_b, node_vars={"tau": 3.0})
    net.add_edge("A", "B", W_ab)
    net.add_edge("B", "A", W_ba, feedback=True)
    obs = net.run(u)

    v_a, v_b, out = np.zeros(n_a), np.zeros(n_b), np.empty((steps, n_b))
    for step in range(steps):
        r_a, r_b = np.tanh(v_a), np.tanh(v_b)  # the outputs after the previous step
        v_a, v_b = v_a + dt * (-v_a / 10.0 + u[step] + W_ba @ r_b), v_b + dt * (-v_b / 3.0 + W_ab @ r_a)
        out[step] = np.tanh(v_b)
    np.testing.assert_allclose(obs["out"], out, rtol=1e-10, atol=1e-10)


def test_an_input_adds_up_with_a_circuits_own_edges_and_with_another_operator():
    """PyRates adds an input into a variable its circuit's edges feed (pc's excitatory m_in, fed
    by ein) to them; so does modelc, and likewise for an input another operator feeds."""
    steps, dt = 600, 1e-4
    extra = np.random.default_rng(7).uniform(0.0, 200.0, steps)
    obs = modelc.simulate(JRC, T=steps * dt, dt=dt, inputs={"pc/rpo_e_ext/m_in": extra},
                          outputs={"m": "pc/pro/m_out"})
    ref = jansen_rit(np.full((steps, 1), 220.0), dt, extra_pc_m_in=lambda step, y: extra[step])
    np.testing.assert_allclose(obs["m"], ref["pc/pro/m_out"], **TOL)
    u = np.random.default_rng(8).normal(size=(50, 2))
    net = Network(dt=0.1)
    net.add_diffeq_node("p", TANH, "li_op/I_ext", "tanh_op/r", N=2)
    out = net.run({("p", "tanh_op/v"): u}, steps=50)["out"]  # r = tanh(v + u): v' = -v/tau alone keeps v = 0
    np.testing.assert_allclose(out, np.tanh(u), rtol=1e-12)


def test_an_input_adds_up_with_recurrent_weights_into_the_same_variable():
    rng = np.random.default_rng(4)
    J, u = rng.normal(0, 0.7, (4, 4)), rng.normal(size=(100, 4))
    net = Network(dt=1e-2)
    net.add_diffeq_node("rnn", TANH, "li_op/I_ext", "li_op/v", J, "tanh_op/r", "li_op/r_in")
    obs = net.run({("rnn", "li_op/r_in"): u, "rnn": 0.5 * u})
    v, out = np.zeros(4), np.empty((100, 4))
    for step in range(100):
        v = v + 1e-2 * (-v / 10.0 + (J @ np.tanh(v) + u[step]) + 0.5 * u[step])
        out[step] = v
    np.testing.assert_allclose(obs["out"], out, rtol=1e-10, atol=1e-10)
    net.reset()  # without inputs the module without the drive runs: only J @ tanh(v), which stays 0
    np.testing.assert_allclose(net.run(steps=5)["out"], 0.0)


def test_the_readmes_circuit_examples_run_and_the_example_file_is_the_first():
    import re
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    section = readme.split("## Circuits: one call, or a node of a Network", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    first, second = {}, {"np": np, "Network": Network}
    exec(blocks[0], first)
    assert first["eeg"].shape == (2000, 1) and list(first["frame"].columns) == ["v_e", "v_i"]
    late = first["eeg"][1000:, 0]  # the last second: an oscillation of about 11 Hz
    crossings = np.count_nonzero(np.diff(np.sign(late - late.mean())) > 0)
    assert 9 <= crossings <= 13
    exec(blocks[1], second)
    assert second["obs"][("jrc", "pc/rpo_e_ext/v")].shape == (20000, 10)
    call = blocks[0].split("eeg =")[0]
    assert call in (root / "examples" / "jansen_rit.py").read_text()


def test_circuits_and_drives_run_the_same_on_the_cupy_backend(tmp_path):
    """The fake CuPy of tests/generated.py (NumPy underneath, CuPy's API on top): a circuit node,
    a feedback edge into a driven node and an edge into a circuit's variable, as with NumPy."""
    from generated import fake_cupy_installed

    def build(device):
        net = Network(dt=1e-2, device=device)
        net.add_diffeq_node("A", TANH, "li_op/I_ext", "tanh_op/r", N=3)
        net.add_diffeq_node("B", TANH, "li_op/I_ext", "tanh_op/r", N=2)
        net.add_edge("A", "B", np.ones((2, 3)))
        net.add_edge("B", "A", np.full((3, 2), 0.5), feedback=True)
        net.add_diffeq_node("J", JRC, "pc/rpo_e_ext/u", "pc/pro/m_out", N=2)
        net.add_edge("J", "A", np.full((3, 2), 0.1), target_var="li_op/r_in")
        net.add_edge("A", "J", np.full((2, 3), 5.0), target_var="pc/rpo_e_ext/m_in")
        return net

    inputs = {"A": np.random.default_rng(5).normal(size=(200, 3)), "J": np.full((200, 1), 220.0)}
    want = build("cpu").run(inputs, output="B")
    with fake_cupy_installed(tmp_path):
        got = build("cuda").run(inputs, output="B")
    np.testing.assert_allclose(np.asarray(got["out"]), want["out"], rtol=1e-12, atol=1e-12)
