"""The compiler core end to end: template -> generated NumPy module, against hand-written loops."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from modelc import compile_model

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext", output_var="li_op/v")


def seed_weights(n=100):
    return np.random.default_rng(0).standard_normal((n, n)) / 10


def seed_rhs(v, J, tau=10.0, k=1.0, eta=0.0, I_ext=1.0):
    return -v / tau + k * (J @ np.tanh(v)) + I_ext + eta


def hand_loop(step, v0, steps):
    """A plain loop over an explicit one-step map; returns the state after every step."""
    out, v = np.empty((steps,) + v0.shape), v0.copy()
    for n in range(steps):
        v = step(v)
        out[n] = v
    return out


def euler(f, dt):
    return lambda v: v + dt * f(v)


def heun(f, dt):
    def step(v):
        k1 = f(v)
        k2 = f(v + dt * k1)
        return v + dt / 2 * (k1 + k2)
    return step


def rk4(f, dt):
    def step(v):
        k1 = f(v)
        k2 = f(v + dt / 2 * k1)
        k3 = f(v + dt / 2 * k2)
        k4 = f(v + dt * k3)
        return v + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return step


@pytest.mark.parametrize("method, scheme, steps", [("euler", euler, 10_000), ("heun", heun, 2000),
                                                   ("rk4", rk4, 2000)])
def test_seed_network_matches_hand_written_loop(method, scheme, steps):
    J, dt = seed_weights(), 1e-3
    mod = compile_model(SEED, method=method, coupling=COUPLING)
    result = mod.run({"li_op/v": np.zeros(100)}, {"weights": J}, {"li_op/I_ext": 1.0}, dt, steps)
    expected = hand_loop(scheme(lambda v: seed_rhs(v, J), dt), np.zeros(100), steps)
    assert result["li_op/v"].shape == (steps, 100)
    assert np.abs(result["li_op/v"] - expected).max() < 1e-10
    assert np.array_equal(result["final"]["li_op/v"], result["li_op/v"][-1])


def test_inputs_per_step_parameters_and_sampling():
    J, dt, steps = seed_weights(20), 1e-2, 300
    drive = np.random.default_rng(1).standard_normal((steps, 20))
    mod = compile_model(SEED, coupling=COUPLING)
    result = mod.run({"li_op/v": np.full(20, 0.3)}, {"weights": J, "li_op/tau": 4.0, "li_op/eta": 0.2},
                     {"li_op/I_ext": drive}, dt, steps, record=["li_op/v", "tanh_op/r"], sampling_steps=3)
    v, rows = np.full(20, 0.3), []
    for n in range(steps):
        v = v + dt * seed_rhs(v, J, tau=4.0, eta=0.2, I_ext=drive[n])
        if (n + 1) % 3 == 0:
            rows.append(v)
    assert result["li_op/v"].shape == (100, 20)
    assert np.abs(result["li_op/v"] - np.array(rows)).max() < 1e-12
    assert np.abs(result["tanh_op/r"] - np.tanh(np.array(rows))).max() < 1e-12


def test_batch_axis_runs_parameter_sets_at_once():
    J, dt, steps = seed_weights(10), 1e-2, 200
    taus = np.array([[2.0], [5.0], [20.0]])
    mod = compile_model(SEED, coupling=COUPLING, vector_params=["li_op/tau"])
    result = mod.run({"li_op/v": np.zeros(10)}, {"weights": J, "li_op/tau": taus}, {"li_op/I_ext": 1.0}, dt, steps)
    assert result["li_op/v"].shape == (steps, 3, 10)
    for b, tau in enumerate(taus[:, 0]):
        expected = hand_loop(euler(lambda v: seed_rhs(v, J, tau=tau), dt), np.zeros(10), steps)
        assert np.abs(result["li_op/v"][:, b] - expected).max() < 1e-12


def test_rhs_matches_the_equations():
    J = seed_weights(5)
    mod = compile_model(SEED, coupling=COUPLING)
    v = np.linspace(-1, 1, 5)
    got = mod.rhs(0.0, {"li_op/v": v}, {"weights": J}, {"li_op/I_ext": 0.5})["li_op/v"]
    assert np.allclose(got, seed_rhs(v, J, I_ext=0.5), rtol=0, atol=1e-14)


LINEAR_CHIRP = """
decay:
  base: OperatorTemplate
  description: "x' = lam*x + cos(t): a linear ODE with a known solution"
  equations: "d/dt * x = lam*x + cos(t)"
  variables: {x: output(1.0), lam: -0.5}
logistic:
  base: OperatorTemplate
  equations: "dx/dt = x*(1 - x)"
  variables: {x: output(0.1)}
"""


def chirp_solution(t, lam=-0.5, x0=1.0):
    a, b = -lam / (1 + lam**2), 1 / (1 + lam**2)
    return a * np.cos(t) + b * np.sin(t) + (x0 - a) * np.exp(lam * t)


def logistic_solution(t, x0=0.1):
    return 1 / (1 + (1 / x0 - 1) * np.exp(-t))


@pytest.mark.parametrize("method, order", [("euler", 1), ("heun", 2), ("rk4", 4)])
@pytest.mark.parametrize("name, exact", [("decay", chirp_solution), ("logistic", logistic_solution)])
def test_convergence_order(tmp_path, method, order, name, exact):
    path = tmp_path / "known.yaml"
    path.write_text(LINEAR_CHIRP)
    mod = compile_model(f"{path}:{name}", method=method)
    horizon, errors, dts = 2.0, [], [0.1, 0.05, 0.025]
    for dt in dts:
        steps = round(horizon / dt)
        result = mod.run({}, {}, {}, dt, steps)
        errors.append(abs(result["final"]["x"][0] - exact(horizon)) if "x" in result["final"]
                      else abs(result["final"][f"{name}/x"][0] - exact(horizon)))
    fitted = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(fitted - order) < 0.25, (errors, fitted)


STANDALONE = textwrap.dedent("""
    import importlib.abc, sys
    class Forbid(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("modelc", "sympy", "lark", "jinja2", "yaml"):
                raise ImportError(f"{name} must not be imported by a generated module")
    sys.meta_path.insert(0, Forbid())
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import tanh_net
    N, steps, dt = 100, 10000, 1e-3
    J = np.random.default_rng(0).standard_normal((N, N)) / 10
    out = tanh_net.run({"li_op/v": np.zeros(N)}, {"weights": J}, {"li_op/I_ext": 1.0}, dt, steps)
    v, worst = np.zeros(N), 0.0
    for n in range(steps):
        v = v + dt * (-v / 10.0 + J @ np.tanh(v) + 1.0)
        worst = max(worst, np.abs(out["li_op/v"][n] - v).max())
    assert not {"modelc", "sympy", "lark"} & set(sys.modules)
    print(worst)
""")


def test_compiled_module_runs_without_modelc(tmp_path):
    from modelc.cli import main
    target = tmp_path / "tanh_net.py"
    assert main(["compile", SEED, "--source-var", "tanh_op/r", "--target-var", "li_op/r_in",
                 "--input-var", "li_op/I_ext", "--output-var", "li_op/v", "-o", str(target)]) == 0
    script = tmp_path / "use_it.py"
    script.write_text(STANDALONE)
    done = subprocess.run([sys.executable, "-I", str(script), str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1e-10


def test_cache_hit_imports_neither_sympy_nor_lark(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from modelc import compile_model
        compile_model({SEED!r}, method="rk4", coupling={COUPLING!r})
        print(sorted({{"sympy", "lark"}} & set(sys.modules)))
    """)
    env = {**os.environ, "MODELC_CACHE_DIR": str(tmp_path / "fresh-cache")}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.strip() == "['lark', 'sympy']"  # the first compile needs them
    assert runs[1].stdout.strip() == "[]"                  # the cache hit does not


def test_array_invariants_take_the_state_shape_once():
    mod = compile_model(SEED, coupling=COUPLING)
    tau = np.array([[5.0], [10.0], [20.0]])
    full = mod._full(-1e-3 / tau + 1, (3, 4))
    assert full.shape == (3, 4) and full.flags.c_contiguous
    assert np.array_equal(full, np.broadcast_to(-1e-3 / tau + 1, (3, 4)))
    assert mod._full(0.5, (3, 4)) == 0.5                            # numbers stay numbers
    assert mod._full(tau, (3, 2**16)) is tau                        # too big to copy: broadcast as before
    rng = np.random.default_rng(1)
    w, x = rng.standard_normal((4, 4)), rng.standard_normal((3, 4))
    product = mod._product(weights=w, scale=0.25, unbatched=False)  # one gemm, scale folded in
    assert np.allclose(product(x, out=None), 0.25 * x @ w.T, rtol=0, atol=1e-14)


def test_generated_module_is_readable():
    mod = compile_model(SEED, coupling=COUPLING)
    source = open(mod.__file__).read()
    assert source.splitlines()[0].startswith('"""neuron_model_templates.rate_neurons.leaky_integrator.tanh')
    assert "import numpy as np" in source and "modelc" not in source.split("import numpy")[1].split("\n")[0]
    assert "_product(weights=weights, scale=dt*k, unbatched=unbatched)" in source  # dt*k folded once
    assert 'c_0 = _full(-dt/tau + 1, shapes[""])' in source  # 1 - dt/tau hoisted, at the state's shape
    assert f"KEY = \"{mod.KEY}\"" in source and len(mod.KEY) == 64
