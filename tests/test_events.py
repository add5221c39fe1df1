"""Events (threshold, reset, emitted spike train, refractory time): the model-file syntax, the IR
and the step program, and their exact meaning in the NumPy array and float backends, checked
against values worked out by hand."""
from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest

from modelc.codegen.plan import make_plan
from modelc.codegen.schemes import get_scheme
from modelc.codegen.step import Check, Emit, Reset, make_step_program
from modelc.errors import EventError, ModelcError, UnsupportedFeatureError
from modelc.ir import Connection, build_system
from modelc.runtime.compiler import compile_model
from modelc.spec import load

# v climbs by a*dt per step; a spike at v > 1 resets it to 0; the spike train counts into n.
RAMP = """
ramp:
  base: OperatorTemplate
  equations:
    - "v' = a"
    - "n' = spike"
  variables:
    v: variable(0.0)
    n: output(0.0)
    a: 3.0
    spike: input(0.0)
  events:
    spike: {when: "v > 1", reset: ["v = 0"], emit: spike}
"""


def _module(tmp_path, text, name, **options):
    path = tmp_path / "model.yaml"
    path.write_text(textwrap.dedent(text))
    return compile_model(f"{path}:{name}", **options)


def _system(tmp_path, text, name):
    path = tmp_path / "model.yaml"
    path.write_text(textwrap.dedent(text))
    return build_system(load(f"{path}:{name}"))


def test_an_event_is_in_the_ir_with_qualified_names(tmp_path):
    system = _system(tmp_path, RAMP, "ramp")
    (event,) = system.events
    assert (event.name, event.emit, event.refractory) == ("ramp/spike", "ramp/spike", None)
    assert str(event.condition) == "ramp/v > 1"
    assert [(state, str(value)) for state, value in event.resets] == [("ramp/v", "0")]
    assert "ramp/spike" not in system.inputs  # the event sets it: no free input
    assert "ramp/spike" in system.outputs  # recordable: its spike counts


def test_the_step_program_checks_first_and_resets_before_the_commit(tmp_path):
    for method in ("euler", "rk4"):
        plan = make_plan(_system(tmp_path, RAMP, "ramp"), get_scheme(method))
        kinds = [type(s).__name__ for s in make_step_program(plan).statements]
        assert kinds[1:3] == ["Check", "Emit"]  # right after stage 1 begins
        assert kinds.index("Reset") < kinds.index("Commit")
        assert kinds.count("Check") == kinds.count("Reset") == 1  # once per step, not per stage


def test_spike_detected_on_the_previous_state_and_reset_after_the_step(tmp_path):
    """v = 0.3, 0.6, 0.9, 1.2 after steps 0..3; step 4 sees 1.2 > 1: it spikes and ends at 0."""
    module = _module(tmp_path, RAMP, "ramp")
    for n in (1, 3):  # Python floats (one unit) and arrays
        out = module.run({"ramp/v": np.zeros(n)}, None, None, dt=0.1, steps=10,
                         record=["ramp/v", "ramp/spike", "ramp/n"])
        np.testing.assert_allclose(out["ramp/v"][:, 0], [0.3, 0.6, 0.9, 1.2, 0.0, 0.3, 0.6, 0.9, 1.2, 0.0], atol=1e-12)
        assert out["ramp/spike"][:, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        # one Euler step of n' = spike adds exactly 1 per spike (the train is H/dt)
        assert out["ramp/n"][:, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 2]


def test_array_and_float_paths_agree_and_sampling_counts_spikes_per_row(tmp_path):
    module = _module(tmp_path, RAMP, "ramp", vector_params=["ramp/a"])
    a = np.array([2.0, 3.0, 7.0])
    arrays = module.run({"ramp/v": np.zeros(3)}, {"ramp/a": a}, None, dt=0.01, steps=1000, record=["ramp/spike"])
    for i, value in enumerate(a):
        single = module.run({}, {"ramp/a": value}, None, dt=0.01, steps=1000, record=["ramp/spike"])
        np.testing.assert_array_equal(single["ramp/spike"][:, 0], arrays["ramp/spike"][:, i])
    sampled = module.run({"ramp/v": np.zeros(3)}, {"ramp/a": a}, None, dt=0.01, steps=1000, sampling_steps=100,
                         record=["ramp/spike"])
    np.testing.assert_array_equal(sampled["ramp/spike"], arrays["ramp/spike"].reshape(10, 100, 3).sum(axis=1))


def test_a_batch_runs_each_member_alike_and_float32_works(tmp_path):
    module = _module(tmp_path, RAMP, "ramp", vector_params=["ramp/a"])
    a = np.array([[2.0], [5.0]])  # (batch, 1) per member
    batch = module.run({"ramp/v": np.zeros((2, 4))}, {"ramp/a": a}, None, dt=0.01, steps=500, record=["ramp/spike"])
    for b in range(2):
        alone = module.run({"ramp/v": np.zeros(4)}, {"ramp/a": float(a[b, 0])}, None, dt=0.01, steps=500,
                           record=["ramp/spike"])
        np.testing.assert_array_equal(batch["ramp/spike"][:, b], alone["ramp/spike"])
    single = _module(tmp_path, RAMP, "ramp", dtype="float32")
    out = single.run({"ramp/v": np.zeros(2, np.float32)}, None, None, dt=0.1, steps=10, record=["ramp/n"])
    assert out["ramp/n"].dtype == np.float32 and out["ramp/n"][-1].tolist() == [2.0, 2.0]


def test_a_run_in_two_parts_equals_one_run(tmp_path):
    module = _module(tmp_path, REFRACTORY, "lif")
    whole = module.run({"lif/v": np.zeros(2)}, None, {"lif/I": 0.3}, dt=0.01, steps=2000, record=["lif/spike"])
    first = module.run({"lif/v": np.zeros(2)}, None, {"lif/I": 0.3}, dt=0.01, steps=1234, record=["lif/spike"])
    second = module.run(first["final"], None, {"lif/I": 0.3}, dt=0.01, steps=766, record=["lif/spike"])
    np.testing.assert_array_equal(np.concatenate([first["lif/spike"], second["lif/spike"]]), whole["lif/spike"])


# v' = I with a threshold at 1 and a refractory time of 0.05 (5 steps of 0.01): held at -0.5.
REFRACTORY = """
lif:
  base: OperatorTemplate
  equations: "v' = I"
  variables:
    v: output(0.0)
    I: input(0.0)
    t_ref: 0.05
  events:
    spike: {when: "v >= 1", reset: ["v = -0.5"], refractory: t_ref}
"""


def test_refractory_time_holds_the_reset_for_round_t_ref_over_dt_steps(tmp_path):
    module = _module(tmp_path, REFRACTORY, "lif")
    for n in (1, 2):
        out = module.run({"lif/v": np.zeros(n)}, None, {"lif/I": 20.0}, dt=0.01, steps=30,
                         record=["lif/v", "lif/spike"])
        v, spikes = out["lif/v"][:, 0], out["lif/spike"][:, 0]
        # v: 0.2 .. 1.0 after steps 0..4; step 5 spikes (1.0 >= 1), steps 6..10 are held at -0.5
        assert np.flatnonzero(spikes).tolist()[:2] == [5, 19]  # -0.5 + 8 * 0.2 >= 1 after step 18
        np.testing.assert_allclose(v[5:11], -0.5)
        np.testing.assert_allclose(v[11:13], [-0.3, -0.1], atol=1e-12)
        assert "lif/spike_refractory" in out["final"]  # the clock is a state: recorded and carried on


# Both resets read the new states before either is assigned: x and y swap where it fires.
SWAP = """
swap:
  base: OperatorTemplate
  equations: ["x' = 1", "y' = 0"]
  variables:
    x: output(0.5)
    y: variable(-1.0)
  events:
    flip: {when: "x > 1", reset: ["x = y", "y = x"]}
"""


def test_resets_are_simultaneous(tmp_path):
    module = _module(tmp_path, SWAP, "swap")
    for n in (1, 2):
        out = module.run({"swap/x": np.full(n, 0.5)}, None, None, dt=0.3, steps=4, record=["swap/x", "swap/y"])
        # x: 0.8, 1.1 (step 1), step 2 fires on 1.1: x_new = 1.4 -> y's -1.0, y_new = -1.0 -> 1.4
        np.testing.assert_allclose(out["swap/x"][:, 0], [0.8, 1.1, -1.0, -0.7])
        np.testing.assert_allclose(out["swap/y"][:, 0], [-1.0, -1.0, 1.4, 1.4])


def test_rhs_and_algebraics_see_no_spikes(tmp_path):
    module = _module(tmp_path, RAMP, "ramp")
    assert module.rhs(0.0, {"ramp/v": np.array([2.0]), "ramp/n": np.zeros(1)})["ramp/n"] == 0.0


def test_inherited_events_and_a_qif_sfa_adaptation_per_spike():
    module = compile_model("neuron_model_templates.spiking_neurons.qif.qif_sfa")
    out = module.run({}, {"qif_sfa_op/tau_x": 1e9}, {"qif_sfa_op/I_ext": 10.0}, dt=1e-3, steps=5000,
                     record=["qif_sfa_op/spike", "qif_sfa_op/x"])
    count = out["qif_sfa_op/spike"].sum()
    assert count >= 3
    assert out["qif_sfa_op/x"][-1, 0] == pytest.approx(count * 1.0, rel=1e-6)  # alpha per spike


def test_gradients_through_a_reset_that_reads_a_state_are_refused(tmp_path):
    _module(tmp_path, RAMP, "ramp", trainable=["ramp/a"])  # v = 0: the surrogate gradient is generated
    with pytest.raises(UnsupportedFeatureError, match="a reset value reads ramp/v"):
        _module(tmp_path, RAMP.replace('"v = 0"', '"v = v - 1"'), "ramp", trainable=["ramp/a"])
    with pytest.raises(UnsupportedFeatureError, match="needs a comparison"):
        _module(tmp_path, RAMP.replace('"v > 1"', '"v - 1"'), "ramp", trainable=["ramp/a"])


def test_the_cache_key_sees_the_event(tmp_path):
    first = _module(tmp_path, RAMP, "ramp")
    second = _module(tmp_path, RAMP.replace('"v > 1"', '"v > 2"'), "ramp")
    assert first.KEY != second.KEY


@pytest.mark.parametrize("body, message", [
    ('{when: "v > 1", reset: ["v = 0"], emit: spike}', None),
    ('{when: "v > 1", reset: "w = 0"}', "event 'fire' resets 'w', which is not a variable of 'ramp'"),
    ('{when: "v > 1", reset: ["spike = 0"]}', "event 'fire' resets 'spike', which is not a state"),
    ('{when: "v > 1", reset: ["v\' = 0"]}', "a reset assigns a new value"),
    ('{when: "v > 1", reset: ["v = 0", "v = 1"]}', "event 'fire' resets 'v' twice"),
    ('{when: "a > 1"}', "the condition of event 'fire' reads no state of 'ramp'"),
    ('{when: "v > 1", emit: a}', "event 'fire' emits into 'a', which is declared parameter"),
    ('{when: "v > 1", reset: ["v = 0"], refractory: v}', "the refractory time of event 'fire' reads 'v'"),
    ('{when: "v > 1", reset: ["v = v + 1"], refractory: 1.0}', "the reset of 'v' reads 'v'"),
])
def test_event_mistakes_are_located_errors(tmp_path, body, message):
    text = RAMP.replace('spike: {when: "v > 1", reset: ["v = 0"], emit: spike}', "fire: " + body)
    if message is None:
        _system(tmp_path, text, "ramp")
        return
    with pytest.raises(EventError) as info:
        _system(tmp_path, text, "ramp")
    assert message in info.value.message
    assert info.value.location is not None and info.value.location.line == 13


def test_syntax_and_name_errors_in_events_point_into_the_text(tmp_path):
    for body, code, column in [('{when: "v >> 1"}', "MC101", 22), ('{when: "v > v_th"}', "MC103", 23),
                               ('{when: "v > 1", reset: ["v = q"]}', "MC103", 40)]:
        with pytest.raises(ModelcError) as info:
            _system(tmp_path, RAMP.replace('spike: {when: "v > 1", reset: ["v = 0"], emit: spike}', "fire: " + body), "ramp")
        assert (info.value.code, info.value.location.line, info.value.location.column) == (code, 13, column)


SPIKING_CASES = [("neuron_model_templates.spiking_neurons.qif.qif", method) for method in ("euler", "rk4")] + \
    [("neuron_model_templates.spiking_neurons.lif.lif", "euler"), ("neuron_model_templates.spiking_neurons.ik.ik", "heun")]


@pytest.mark.parametrize("path, method", SPIKING_CASES)
def test_generated_event_code_names_only_what_is_declared_and_reads_what_it_binds(path, method):
    """The hygiene test_step.py asks of every module, for modules with events."""
    import ast
    import builtins

    from modelc.codegen.generate import generate
    from modelc.codegen.numpy import module_context
    from modelc.codegen.numpy.arrays import TEMPLATES
    from modelc.codegen.templating import declared_names, environment
    from test_step import _functions, _names

    op = path.rsplit(".", 1)[1] + "_op"
    system = build_system(load(path), [Connection(f"{op}/s", f"{op}/s_in", "weights")])
    context = module_context(system, make_plan(system, get_scheme(method)), "key", "0", "float64")
    source = environment().get_template("numpy/module.py.j2").render(**context)
    handed_out = set(context["m"].namer.taken) | (set(context["single"].namer.taken) if context["single"] else set())
    declared = set().union(*(declared_names(t) for t in TEMPLATES))
    module_level = {n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for function in _functions(source):
        stored, loaded = _names(function)
        unknown = {n for n in stored | loaded if n not in declared and n not in handed_out and not hasattr(builtins, n)
                   and not (n.startswith("_") and n in module_level | {"_POPULATION", "_COPY_LIMIT", "_CHUNK_BYTES"})}
        assert not unknown, f"{function.name} uses names no template declares: {sorted(unknown)}"
    for function in _functions(generate(system, method)):
        stored, loaded = _names(function)
        stored -= {a.arg for a in function.args.args}
        assert not stored - loaded, f"{function.name} binds names it never reads: {sorted(stored - loaded)}"


def test_an_emitted_input_nothing_reads_is_not_computed(tmp_path):
    text = RAMP.replace('"n\' = spike"', '"n\' = 0"')
    program = make_step_program(make_plan(_system(tmp_path, text, "ramp"), get_scheme("euler")))
    assert not any(isinstance(s, Emit) for s in program.statements)
    assert any(isinstance(s, Check) for s in program.statements) and any(isinstance(s, Reset) for s in program.statements)


NOISY = """
nlif:
  base: OperatorTemplate
  equations: ["v' = -v/tau + I + sigma*xi", "n' = spike"]
  variables: {v: variable(0.0), n: output(0.0), tau: 10.0, I: 0.09, sigma: 0.3, spike: input(0.0)}
  events:
    spike: {when: "v > 1", reset: ["v = 0"], emit: spike}
"""


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_events_with_white_noise(tmp_path, method):
    """Noise-driven spikes: reproducible with a seed, each reset to 0 after its step, n counts them."""
    module = _module(tmp_path, NOISY, "nlif", method=method)
    runs = [module.run({"nlif/v": np.zeros(50)}, None, None, dt=0.01, steps=3000, seed=7,
                       record=["nlif/spike", "nlif/v", "nlif/n"]) for _ in range(2)]
    spikes, v = runs[0]["nlif/spike"], runs[0]["nlif/v"]
    np.testing.assert_array_equal(spikes, runs[1]["nlif/spike"])
    assert spikes.sum() > 50  # tau*I = 0.9 < 1: every spike is the noise's
    assert np.all(v[spikes.astype(bool)] == 0.0)
    np.testing.assert_array_equal(runs[0]["nlif/n"][-1], spikes.sum(axis=0))


def test_every_event_mistake_of_an_operator_is_reported_together(tmp_path):
    from modelc.errors import ErrorGroup
    text = RAMP.replace('spike: {when: "v > 1", reset: ["v = 0"], emit: spike}',
                        'e1: {when: "v > 1", reset: ["a = 0"]}\n    e2: {when: "vv > 1"}')
    with pytest.raises(ErrorGroup) as info:
        _system(tmp_path, text, "ramp")
    assert [e.code for e in info.value.errors] == ["MC131", "MC103"]
    assert "resets 'a', which is not a state" in info.value.errors[0].message


# s_in reads the spike train: it has a value only during a step, never at a record (between steps)
SPIKE_READER = """
op:
  base: OperatorTemplate
  equations: ["v' = (v^2 + eta + I_ext)/tau + s_in", "s_in = J*spike", "u = 2*s_in"]
  variables:
    v: variable(-2.0)
    eta: 5.0
    tau: 1.0
    J: 0.1
    I_ext: input(0.0)
    spike: input(0.0)
    s_in: output(0.0)
    u: output(0.0)
  events:
    spike: {when: "v > 100", reset: ["v = -100"], emit: spike}
node:
  base: NodeTemplate
  operators: [op]
"""


def _refuses_spike_readers(module, params=None):
    for name, n in (("op/s_in", 3), ("op/u", 3), ("op/s_in", 1)):  # u reads it through s_in; 1 unit: floats
        with pytest.raises(ModelcError) as info:
            module.run(module.initial_state(n), params or {}, {}, 1e-3, 10, record=["op/v", name])
        assert info.value.code == "MC202"
        assert f"cannot record '{name}': it reads the spike train of event 'op/spike'" in str(info.value)
        assert "record=['op/spike']" in info.value.hint
    rec = module.run(module.initial_state(3), params or {}, {}, 1e-3, 2000, record=["op/v", "op/spike"])
    assert rec["op/spike"].sum(axis=0).tolist() == [1, 1, 1]  # each unit spikes once
    assert rec["op/v"].max() > 100 and rec["op/v"].min() < -99


@pytest.mark.parametrize("options", [{}, {"method": "rk4"}, {"dtype": "float32"},
                                     pytest.param({"backend": "numba"}, marks=pytest.mark.skipif(
                                         importlib.util.find_spec("numba") is None, reason="needs numba"))])
def test_recording_a_computed_variable_that_reads_a_spike_train_is_refused(tmp_path, options):
    module = _module(tmp_path, SPIKE_READER, "node", **options)
    assert module.SPIKE_READERS == {"op/s_in": "op/spike", "op/u": "op/spike"}
    _refuses_spike_readers(module)
    # rhs() and algebraics() see no spikes (0), and keep working
    y = module.initial_state(3)
    np.testing.assert_allclose(module.rhs(0.0, y)["op/v"], [9.0, 9.0, 9.0])
    computed = module.algebraics(0.0, y, module.default_params(), dict(module.INPUTS))
    assert np.all(computed["op/s_in"] == 0) and np.all(computed["op/u"] == 0)


def test_a_weighted_spike_train_is_refused_and_rhs_sees_zeros():
    module = compile_model("neuron_model_templates.spiking_neurons.qif.qif", method="euler",
                           coupling=dict(source_var="qif_op/spike", target_var="qif_op/s_in"))
    assert module.SPIKE_READERS == {"qif_op/s_in": "qif_op/spike"}
    params, y = {"weights": np.ones((4, 4))}, module.initial_state(4)
    with pytest.raises(ModelcError, match="cannot record 'qif_op/s_in'"):
        module.run(y, params, {}, 1e-3, 10, record=["qif_op/s_in"])
    rec = module.run(y, params, {"qif_op/I_ext": 30.0}, 1e-3, 500, record=["qif_op/v", "qif_op/spike"])
    assert rec["qif_op/spike"].sum() > 0
    np.testing.assert_allclose(module.rhs(0.0, y, params)["qif_op/v"], [-1.0] * 4)  # W @ 0, no matmul error
    computed = module.algebraics(0.0, y, {**module.default_params(), **params}, dict(module.INPUTS))
    np.testing.assert_array_equal(computed["qif_op/s_in"], np.zeros(4))


def test_the_network_refuses_recording_a_spike_reader_alike(tmp_path):
    from modelc import Network
    (tmp_path / "model.yaml").write_text(SPIKE_READER)
    net = Network(dt=1e-3)
    net.add_diffeq_node("n", f"{tmp_path / 'model.yaml'}:node", "op/I_ext", "op/v", N=3)
    with pytest.raises(ModelcError, match="cannot record 'n/op/s_in': it reads the spike train of event 'n/op/spike'") \
            as info:
        net.run(steps=10, record_output=False, record_vars=[("n", "s_in")])
    assert info.value.code == "MC202"
    obs = net.run(steps=2000, record_output=False, record_vars=[("n", "v"), ("n", "spike")])
    assert obs[("n", "spike")].sum(axis=0).tolist() == [1, 1, 1]


def test_the_cupy_backend_refuses_recording_a_spike_reader_alike(tmp_path):
    """The fake CuPy (tests/fake_cupy.py): the same SPIKE_READERS and the same refusal; rhs() and
    algebraics() bind the quiet spike train (zeros) as the NumPy module does."""
    from generated import fake_cupy_installed
    with fake_cupy_installed(tmp_path / "cache"):
        module = _module(tmp_path, SPIKE_READER, "node", backend="cupy")
        assert module.SPIKE_READERS == {"op/s_in": "op/spike", "op/u": "op/spike"}
        _refuses_spike_readers(module)
        np.testing.assert_allclose(module.rhs(0.0, module.initial_state(3))["op/v"], [9.0, 9.0, 9.0])
        weighted = compile_model("neuron_model_templates.spiking_neurons.qif.qif", method="euler", backend="cupy",
                                 coupling=dict(source_var="qif_op/spike", target_var="qif_op/s_in"))
        params, y = {"weights": np.ones((4, 4))}, weighted.initial_state(4)
        with pytest.raises(ModelcError, match="cannot record 'qif_op/s_in'"):
            weighted.run(y, params, {}, 1e-3, 10, record=["qif_op/s_in"])
        np.testing.assert_allclose(weighted.rhs(0.0, y, params)["qif_op/v"], [-1.0] * 4)
