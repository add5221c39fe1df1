"""The shipped model library, each model checked against an independent reference.

Two kinds of test per model:

* Trajectory: modelc integrates the model with RK4 and a small fixed step; SciPy's
  ``solve_ivp`` (DOP853, rtol=1e-10, atol=1e-12) integrates a right-hand side written by
  hand in this file from the source paper's equations and constants (not derived from the
  YAML), and the two are compared at the recorded times. RK4's global error is O(dt^4); for
  the steps used here it was measured (with a plain RK4 loop on the same reference RHS) at
  1e-10 .. 5e-8 of each variable's range (HH: 2e-6 at its spikes). The tolerance is
  ``TOL = 1e-6`` of each variable's range (``1e-5`` for HH): 20x or more above the RK4 error,
  far below any mistake in a model (a wrong constant or sign shows up at 1e-3 or worse).
  Horizons are short enough that the solutions have not diverged (Lorenz: 5 time units).
* Property: the behaviour the paper is known for (QIF bistability, Kuramoto synchronisation
  threshold, van der Pol amplitude, Jansen-Rit alpha rhythm, Hodgkin-Huxley repetitive firing
  and no NaN at the singular voltages, Lorenz boundedness and positive Lyapunov exponent, ...).

Records: ``result[name]`` has shape (steps // sampling_steps, n); row k is the state after
step (k + 1) * sampling_steps. Names are "op/var" for a node and "node/op/var" for a circuit.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from modelc import compile_model

PI = np.pi
TOL = 1e-6
MODELS = Path(__file__).resolve().parent.parent / "models"


@functools.lru_cache(maxsize=None)
def model(path: str, vector_params: tuple = ()):
    """Compile a template once per test session (vector_params: parameters given per unit)."""
    return compile_model(path, method="rk4", vector_params=vector_params)


def simulate(mod, dt, steps, y0=None, params=None, inputs=None, n=1, record=None, sampling_steps=1):
    """Run `mod` from its default initial state, overridden by `y0` (scalars or (n,) arrays)."""
    state = mod.initial_state(n)
    for name, value in (y0 or {}).items():
        assert name in state, f"unknown state {name!r}; the model has {sorted(state)}"
        state[name] = np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()
    return mod.run(state, params or {}, inputs or {}, dt, steps, record=record, sampling_steps=sampling_steps)


def reference(rhs, y0, t, args=()):
    """The independent solution at the times t (t[0] > 0)."""
    sol = solve_ivp(rhs, (0.0, t[-1]), np.asarray(y0, dtype=float), method="DOP853", rtol=1e-10,
                    atol=1e-12, t_eval=t, args=args)
    assert sol.success, sol.message
    return sol.y


def record_times(dt, steps, sampling_steps=1):
    return dt * sampling_steps * np.arange(1, steps // sampling_steps + 1)


def assert_close(name, got, want, tol=TOL):
    """|got - want| <= tol * (range of want), everywhere."""
    got = np.asarray(got, dtype=float)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    assert np.all(np.isfinite(got)), f"{name}: non-finite values"
    scale = max(np.max(np.abs(want)), 1e-12)
    err = np.max(np.abs(got - want))
    assert err <= tol * scale, f"{name}: max error {err:.3g} > {tol:g} * {scale:.3g}"


def compare(path, rhs, states, y0, dt, steps, params=None, inputs=None, args=(), sampling_steps=1,
            tol=TOL, transform=None):
    """Run `path` with modelc and `rhs` with solve_ivp from the same y0; compare `states`.

    `states` are modelc names in the order of the reference state vector; `transform` (if given)
    maps the modelc records (dict) to that vector instead.
    """
    mod = model(path)
    res = simulate(mod, dt, steps, y0=y0, params=params, inputs=inputs,
                   record=list(states) if transform is None else None, sampling_steps=sampling_steps)
    t = record_times(dt, steps, sampling_steps)
    if transform is None:
        init = mod.initial_state(1)
        y_start = [y0[s] if s in y0 else float(init[s][0]) for s in states]
        got = [res[s][:, 0] for s in states]
    else:
        y_start, got = transform(None, mod), transform(res, mod)
    want = reference(rhs, y_start, t, args)
    for i, name in enumerate(states):
        assert_close(f"{path} {name}", got[i], want[i], tol)
    return res, want


# --- independent right-hand sides (from the papers, not from the YAML) -----------------

def rhs_qif(t, y, tau=1.0, Delta=1.0, eta=-5.0, J=15.0, I_ext=0.0):
    """Montbrió, Pazó & Roxin (2015): firing rate r and mean potential v, with tau."""
    r, v = y
    return [(Delta / (PI * tau) + 2 * r * v) / tau,
            (v * v + eta + I_ext + J * tau * r - (PI * tau * r) ** 2) / tau]


def rhs_qif_sfa(t, y, tau=1.0, Delta=2.0, eta=-2.0, J=15 * np.sqrt(2), alpha=10.0, tau_a=10.0):
    """Gast, Schmidt & Knösche (2020): QIF mean field minus an alpha-kernel adaptation A."""
    r, v, A, B = y
    return [(Delta / (PI * tau) + 2 * r * v) / tau,
            (v * v + eta - A + J * tau * r - (PI * tau * r) ** 2) / tau,
            B / tau_a,
            (alpha * r - 2 * B - A) / tau_a]


# Jansen & Rit (1995), in seconds and mV: A, B (mV), a, b (1/s), 2 e0 (1/s), v0 (mV), r (1/mV).
JR = dict(A=3.25, B=22.0, a=100.0, b=50.0, e0x2=5.0, v0=6.0, r=0.56, C=135.0)


def rhs_jansen_rit(t, y, p=220.0):
    """The paper's six ODEs: y0 pyramidal output PSP, y1/y2 excitatory/inhibitory PSPs on pc."""
    A, B, a, b, C = JR["A"], JR["B"], JR["a"], JR["b"], JR["C"]
    C1, C2, C3, C4 = C, 0.8 * C, 0.25 * C, 0.25 * C

    def S(v):
        return JR["e0x2"] / (1 + np.exp(JR["r"] * (JR["v0"] - v)))

    y0, y1, y2, y3, y4, y5 = y
    return [y3, y4, y5,
            A * a * S(y1 - y2) - 2 * a * y3 - a * a * y0,
            A * a * (p + C2 * S(C1 * y0)) - 2 * a * y4 - a * a * y1,
            B * b * C4 * S(C3 * y0) - 2 * b * y5 - b * b * y2]


def rhs_wilson_cowan(t, y, P=1.25, Q=0.0, tau=10.0):
    """Wilson & Cowan (1972), limit-cycle constants c1..c4 = 16, 12, 15, 3; r_e = r_i = 1."""
    E, I = y

    def S(x, a, theta):
        return 1 / (1 + np.exp(-a * (x - theta))) - 1 / (1 + np.exp(a * theta))

    ke = 1 - 1 / (1 + np.exp(1.3 * 4.0))
    ki = 1 - 1 / (1 + np.exp(2.0 * 3.7))
    return [(-E + (ke - E) * S(16 * E - 12 * I + P, 1.3, 4.0)) / tau,
            (-I + (ki - I) * S(15 * E - 3 * I + Q, 2.0, 3.7)) / tau]


def rhs_kuramoto(t, theta, omega, K):
    """theta_i' = omega_i + K/N sum_j sin(theta_j - theta_i), the O(N^2) textbook form."""
    return omega + K / theta.size * np.sin(theta[None, :] - theta[:, None]).sum(axis=1)


def rhs_kuramoto_oa(t, y, Delta=0.5, K=2.0, omega0=0.0):
    """Ott & Antonsen (2008): z' = (i omega0 - Delta) z + K/2 (z - |z|^2 z), integrated in complex form."""
    z = y[0] + 1j * y[1]
    dz = (1j * omega0 - Delta) * z + K / 2 * (z - abs(z) ** 2 * z)
    return [dz.real, dz.imag]


def rhs_vdp(t, y, mu=1.0):
    x, v = y
    return [v, mu * (1 - x * x) * v - x]


def rhs_stuart_landau(t, y, mu=1.0, omega=1.0):
    """z' = (mu + i omega) z - |z|^2 z in complex form."""
    z = y[0] + 1j * y[1]
    dz = (mu + 1j * omega) * z - abs(z) ** 2 * z
    return [dz.real, dz.imag]


def rhs_fhn(t, y, I_ext=0.0, a=0.7, b=0.8, phi=0.08):
    v, w = y
    return [v - v ** 3 / 3 - w + I_ext, phi * (v + a - b * w)]


def hh_rates(v):
    """The classic rate functions, shifted to rest at -65 mV (1/ms); 0/0 at v = -40, -55 patched."""
    v = np.asarray(v, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        am = np.where(np.isclose(v, -40.0, rtol=0, atol=1e-12), 1.0,
                      0.1 * (v + 40) / (1 - np.exp(-(v + 40) / 10)))
        an = np.where(np.isclose(v, -55.0, rtol=0, atol=1e-12), 0.1,
                      0.01 * (v + 55) / (1 - np.exp(-(v + 55) / 10)))
    bm = 4 * np.exp(-(v + 65) / 18)
    ah = 0.07 * np.exp(-(v + 65) / 20)
    bh = 1 / (1 + np.exp(-(v + 35) / 10))
    bn = 0.125 * np.exp(-(v + 65) / 80)
    return am, bm, ah, bh, an, bn


def rhs_hh(t, y, I_ext=0.0):
    v, m, h, n = y
    am, bm, ah, bh, an, bn = hh_rates(v)
    i_ion = 120 * m ** 3 * h * (v - 50) + 36 * n ** 4 * (v + 77) + 0.3 * (v + 54.387)
    return [I_ext - i_ion, am * (1 - m) - bm * m, ah * (1 - h) - bh * h, an * (1 - n) - bn * n]


def hh_rest():
    am, bm, ah, bh, an, bn = hh_rates(-65.0)
    return float(am / (am + bm)), float(ah / (ah + bh)), float(an / (an + bn))


def rhs_lorenz(t, y, sigma=10.0, rho=28.0, beta=8 / 3):
    x, v, z = y
    return [sigma * (v - x), x * (rho - z) - v, x * v - beta * z]


# --- defaults: the YAML carries the papers' values ---------------------------------------

DEFAULTS = {
    "model_templates.neural_mass_models.qif.qif": {
        "qif_op/tau": 1.0, "qif_op/Delta": 1.0, "qif_op/eta": -5.0, "qif_op/J": 15.0},
    "model_templates.neural_mass_models.qif.qif_sfa": {
        "qif_sfa_op/Delta": 2.0, "qif_sfa_op/J": 15 * np.sqrt(2), "qif_sfa_op/alpha": 10.0,
        "qif_sfa_op/tau_a": 10.0},
    "model_templates.neural_mass_models.jansenrit.JRC": {
        "pc/pro/m_max": 5.0, "pc/pro/s": 0.56, "pc/pro/v_thr": 6.0, "ein/rpo_e/h": 3.25,
        "ein/rpo_e/tau": 0.01, "pc/rpo_i/h": -22.0, "pc/rpo_i/tau": 0.02},
    "model_templates.neural_mass_models.wilsoncowan.WC": {
        "e/wc_e_op/a": 1.3, "e/wc_e_op/theta": 4.0, "i/wc_i_op/a": 2.0, "i/wc_i_op/theta": 3.7},
    "model_templates.oscillators.vanderpol.vdp": {"vdp_op/mu": 1.0},
    "model_templates.oscillators.fitzhugh_nagumo.fhn": {
        "fhn_op/a": 0.7, "fhn_op/b": 0.8, "fhn_op/tau": 12.5},
    "neuron_model_templates.conductance.hodgkin_huxley.hh": {
        "hh_op/g_Na": 120.0, "hh_op/g_K": 36.0, "hh_op/g_L": 0.3, "hh_op/E_Na": 50.0,
        "hh_op/E_K": -77.0, "hh_op/E_L": -54.387, "hh_op/C_m": 1.0},
    "model_templates.chaos.lorenz.lorenz": {
        "lorenz_op/sigma": 10.0, "lorenz_op/rho": 28.0, "lorenz_op/beta": 8 / 3},
}

ALL_PATHS = [
    "model_templates.neural_mass_models.qif.qif",
    "model_templates.neural_mass_models.qif.qif_sfa",
    "model_templates.neural_mass_models.jansenrit.JRC",
    "model_templates.neural_mass_models.wilsoncowan.WC",
    "model_templates.oscillators.kuramoto.kuramoto",
    "model_templates.oscillators.kuramoto.kuramoto_oa",
    "model_templates.oscillators.vanderpol.vdp",
    "model_templates.oscillators.stuartlandau.sl",
    "model_templates.oscillators.fitzhugh_nagumo.fhn",
    "neuron_model_templates.conductance.hodgkin_huxley.hh",
    "model_templates.chaos.lorenz.lorenz",
]


@pytest.mark.parametrize("path", sorted(DEFAULTS))
def test_parameter_defaults_are_the_papers(path):
    params = model(path).PARAMS
    for name, value in DEFAULTS[path].items():
        assert name in params, f"{path}: no parameter {name!r} (has {sorted(params)})"
        assert params[name] == pytest.approx(value, rel=1e-12), name


@pytest.mark.parametrize("path", ALL_PATHS)
def test_every_model_compiles_and_runs_finite(path):
    mod = model(path)
    res = simulate(mod, 1e-4 if "jansenrit" in path else 1e-3, 10)
    assert set(res) >= set(mod.STATES)
    for name in mod.STATES:
        assert res[name].shape == (10, 1), name
        assert np.all(np.isfinite(res[name])), name


def _documented_files():
    ours = ["model_templates/neural_mass_models/qif.yaml", "model_templates/neural_mass_models/jansenrit.yaml",
            "model_templates/neural_mass_models/wilsoncowan.yaml", "model_templates/oscillators/kuramoto.yaml",
            "model_templates/oscillators/vanderpol.yaml", "model_templates/oscillators/stuartlandau.yaml",
            "model_templates/oscillators/fitzhugh_nagumo.yaml", "model_templates/chaos/lorenz.yaml",
            "neuron_model_templates/conductance/hodgkin_huxley.yaml"]
    return [MODELS / f for f in ours]


@pytest.mark.parametrize("file", _documented_files(), ids=lambda p: p.stem)
def test_every_template_and_variable_is_documented(file):
    """A one-line summary plus a citation for each template; unit and meaning for each variable."""
    text = file.read_text(encoding="utf-8")
    assert text.startswith("%YAML 1.2\n---\n")
    data = yaml.safe_load(text)
    for name, body in data.items():
        description = body.get("description", "")
        lines = [line for line in description.strip().splitlines() if line.strip()]
        assert len(lines) >= 2, f"{file.name}:{name}: description needs a summary line and a citation"
        assert len(lines[0]) <= 130, f"{file.name}:{name}: summary line too long"
        assert any(ch.isdigit() for ch in " ".join(lines[1:])), f"{file.name}:{name}: no year/citation"
        for var, spec in (body.get("variables") or {}).items():
            assert isinstance(spec, dict) and {"default", "unit", "description"} <= set(spec), \
                f"{file.name}:{name}: variable {var} needs the long form with unit and description"


# --- QIF mean field (Montbrió, Pazó & Roxin 2015) -----------------------------------------

QIF = "model_templates.neural_mass_models.qif.qif"
QIF_SFA = "model_templates.neural_mass_models.qif.qif_sfa"


def qif_fixed_points(eta=-5.0, J=15.0, Delta=1.0):
    """Fixed points (tau = 1): v = -Delta/(2 pi r), (Delta/(2 pi r))^2 + eta + J r - (pi r)^2 = 0."""
    def g(r):
        return (Delta / (2 * PI * r)) ** 2 + eta + J * r - (PI * r) ** 2
    grid = np.linspace(1e-3, 5.0, 5001)
    sign = np.sign(g(grid))
    return [brentq(g, grid[i], grid[i + 1]) for i in np.nonzero(np.diff(sign))[0]]


def test_qif_matches_reference():
    compare(QIF, rhs_qif, ["qif_op/r", "qif_op/v"], {"qif_op/r": 0.5, "qif_op/v": 0.0},
            dt=2e-3, steps=5000, sampling_steps=10)


def test_qif_bistability():
    """eta = -5, J = 15, Delta = 1: a down state and an up state, reached from different starts."""
    down, saddle, up = qif_fixed_points()
    assert down < 0.1 < 0.9 < up  # (0.0811, 0.473, 1.0306)
    res = simulate(model(QIF), 0.01, 4000, n=2,
                   y0={"qif_op/r": [0.0, 1.0], "qif_op/v": [-2.0, -0.15]})
    r, v = res["qif_op/r"][-1], res["qif_op/v"][-1]
    # the up state is a focus, still spiralling in slowly after 40 time units
    np.testing.assert_allclose(r, [down, up], rtol=1e-4)
    np.testing.assert_allclose(v, [-1 / (2 * PI * down), -1 / (2 * PI * up)], rtol=1e-4)


def test_qif_input_pulses_switch_between_states():
    """A positive pulse of I_ext moves the population up, a negative one back down (MPR Fig. 2)."""
    dt, steps = 0.01, 7500
    t = dt * np.arange(steps)
    drive = np.where((t >= 10) & (t < 20), 3.0, 0.0) + np.where((t >= 45) & (t < 50), -3.0, 0.0)
    res = simulate(model(QIF), dt, steps, inputs={"qif_op/I_ext": drive[:, None]})
    r = res["qif_op/r"][:, 0]
    down, _, up = qif_fixed_points()
    assert r[int(9.9 / dt)] == pytest.approx(down, rel=1e-4)
    assert r[int(44.9 / dt)] == pytest.approx(up, rel=1e-3)
    assert r[-1] == pytest.approx(down, rel=1e-3)


def test_qif_sfa_matches_reference():
    compare(QIF_SFA, rhs_qif_sfa, ["qif_sfa_op/r", "qif_sfa_op/v", "qif_sfa_op/a", "qif_sfa_op/x_a"],
            {}, dt=2e-3, steps=12500, sampling_steps=5)


def test_qif_sfa_adaptation_ends_the_up_state_and_bursts():
    """Adaptation terminates the high-activity state, which then comes back: bursting."""
    dt, steps = 1e-2, 6000
    res = simulate(model(QIF_SFA), dt, steps)
    r = res["qif_sfa_op/r"][:, 0]
    t = record_times(dt, steps)
    late = r[t > 20]
    assert late.min() < 0.2 and late.max() > 2.0  # down phase and at least one new burst
    # without adaptation the same population stays up once it got there
    r_no = simulate(model(QIF_SFA), dt, steps, params={"qif_sfa_op/alpha": 0.0})["qif_sfa_op/r"][:, 0]
    assert r_no[t > 20].min() > 0.5


# --- Jansen-Rit (1995) --------------------------------------------------------------------

JRC = "model_templates.neural_mass_models.jansenrit.JRC"


def _jrc_as_paper(res, mod):
    """modelc's circuit states -> the paper's (y0..y5): ein's PSP is C1*y0, pc's are y1 and -y2."""
    C1 = JR["C"]
    if res is None:
        get = {name: float(value[0]) for name, value in mod.initial_state(1).items()}.__getitem__
    else:
        get = (lambda name: res[name][:, 0])
    return [np.asarray(get("ein/rpo_e/v")) / C1, np.asarray(get("pc/rpo_e_ext/v")),
            -np.asarray(get("pc/rpo_i/v")), np.asarray(get("ein/rpo_e/x")) / C1,
            np.asarray(get("pc/rpo_e_ext/x")), -np.asarray(get("pc/rpo_i/x"))]


def test_jansen_rit_matches_reference():
    res, want = compare(JRC, rhs_jansen_rit, ["y0", "y1", "y2", "y3", "y4", "y5"], {}, dt=2e-4, steps=2500,
                        transform=_jrc_as_paper)
    # the inhibitory interneurons see C3*y0 = 0.25*C*y0
    assert_close("iin/rpo_e/v", res["iin/rpo_e/v"][:, 0], 0.25 * JR["C"] * want[0])


def test_jansen_rit_oscillates_in_alpha_band():
    """With p = 220/s the pyramidal potential y1 - y2 oscillates at 8-12 Hz (FFT peak)."""
    dt, steps = 1e-3, 3000  # 3 s; the first second is discarded
    res = simulate(model(JRC), dt, steps, record=["pc/rpo_e_ext/v", "pc/rpo_i/v"])
    v = (res["pc/rpo_e_ext/v"] + res["pc/rpo_i/v"])[:, 0][int(1.0 / dt):]
    assert v.max() - v.min() > 1.0  # mV: a real oscillation, not a fixed point
    spectrum = np.abs(np.fft.rfft(v - v.mean())) ** 2
    freqs = np.fft.rfftfreq(v.size, dt)
    peak = freqs[1:][np.argmax(spectrum[1:])]
    assert 8.0 <= peak <= 12.0, peak


# --- Wilson-Cowan (1972) ------------------------------------------------------------------

WC = "model_templates.neural_mass_models.wilsoncowan.WC"


def test_wilson_cowan_matches_reference():
    compare(WC, rhs_wilson_cowan, ["e/wc_e_op/r", "i/wc_i_op/r"], {}, dt=0.05, steps=4000)


def test_wilson_cowan_limit_cycle_and_rest():
    """P = 1.25 gives a sustained oscillation; P = 0 leaves the pair at rest at E = I = 0."""
    res = simulate(model(WC), 0.2, 3000)
    e = res["e/wc_e_op/r"][1500:, 0]
    assert e.max() - e.min() > 0.1
    quiet = simulate(model(WC), 0.2, 1000, inputs={"e/wc_e_op/I_ext": 0.0})
    assert np.max(np.abs(quiet["e/wc_e_op/r"])) < 1e-9


# --- Kuramoto and its Ott-Antonsen mean field ------------------------------------------------

KURAMOTO = "model_templates.oscillators.kuramoto.kuramoto"
OMEGA_PER_UNIT = ("kuramoto_op/omega",)
KURAMOTO_OA = "model_templates.oscillators.kuramoto.kuramoto_oa"


def test_kuramoto_matches_reference():
    rng = np.random.default_rng(1)
    n = 50
    omega = rng.normal(1.0, 0.5, n)
    theta0 = rng.uniform(0, 2 * PI, n)
    K = 1.5
    dt, steps = 0.01, 1000
    res = simulate(model(KURAMOTO, OMEGA_PER_UNIT), dt, steps, n=n, y0={"kuramoto_op/theta": theta0},
                   params={"kuramoto_op/omega": omega, "kuramoto_op/K": K})
    want = reference(rhs_kuramoto, theta0, record_times(dt, steps), args=(omega, K))
    got = res["kuramoto_op/theta"]
    assert got.shape == (steps, n)
    assert_close("theta", got.T, want)


def _order_parameter(theta):
    return np.abs(np.exp(1j * theta).mean(axis=-1))


@pytest.mark.parametrize("K, synchronised", [(2.0, True), (0.5, False)])
def test_kuramoto_lorentzian_sync_threshold(K, synchronised):
    """Lorentzian frequencies (half-width 0.5): sync iff K > 2*Delta = 1; then R -> sqrt(1 - 2 Delta/K)."""
    n, Delta = 2000, 0.5
    omega = Delta * np.tan(PI * ((np.arange(n) + 0.5) / n - 0.5))  # deterministic quantiles
    theta0 = np.random.default_rng(0).uniform(0, 2 * PI, n)
    dt, steps = 0.05, 1200
    res = simulate(model(KURAMOTO, OMEGA_PER_UNIT), dt, steps, n=n, y0={"kuramoto_op/theta": theta0},
                   params={"kuramoto_op/omega": omega, "kuramoto_op/K": K}, sampling_steps=10)
    R = _order_parameter(res["kuramoto_op/theta"])[-40:].mean()  # last 20 time units
    if synchronised:
        assert R == pytest.approx(np.sqrt(1 - 2 * Delta / K), abs=0.05)
    else:
        assert R < 0.15


def test_kuramoto_oa_matches_reference():
    def as_cartesian(res, mod):
        if res is None:
            r, psi = 0.3, 0.2
        else:
            r, psi = res["kuramoto_oa_op/r"][:, 0], res["kuramoto_oa_op/psi"][:, 0]
        return [r * np.cos(psi), r * np.sin(psi)]
    compare(KURAMOTO_OA, rhs_kuramoto_oa, ["x", "y"], {"kuramoto_oa_op/r": 0.3, "kuramoto_oa_op/psi": 0.2},
            dt=0.01, steps=2000, params={"kuramoto_oa_op/omega0": 1.3}, args=(0.5, 2.0, 1.3),
            transform=as_cartesian)


def test_kuramoto_oa_threshold():
    mod = model(KURAMOTO_OA)
    up = simulate(mod, 0.05, 1000, params={"kuramoto_oa_op/K": 4.0, "kuramoto_oa_op/Delta": 1.0})
    assert up["kuramoto_oa_op/r"][-1, 0] == pytest.approx(np.sqrt(0.5), rel=1e-6)
    down = simulate(mod, 0.05, 1000, params={"kuramoto_oa_op/K": 1.5, "kuramoto_oa_op/Delta": 1.0})
    assert down["kuramoto_oa_op/r"][-1, 0] < 1e-3


# --- van der Pol, Stuart-Landau, FitzHugh-Nagumo ---------------------------------------------

VDP = "model_templates.oscillators.vanderpol.vdp"
SL = "model_templates.oscillators.stuartlandau.sl"
FHN = "model_templates.oscillators.fitzhugh_nagumo.fhn"


def test_vdp_matches_reference():
    compare(VDP, rhs_vdp, ["vdp_op/x", "vdp_op/y"], {"vdp_op/x": 1.0, "vdp_op/y": 0.0}, dt=5e-3, steps=3000)


def test_vdp_limit_cycle_amplitude_is_two():
    """mu = 1: amplitude 2.0086 and period 6.6633 (known values); ~2 for any mu."""
    dt, steps = 0.01, 6000
    x = simulate(model(VDP), dt, steps, y0={"vdp_op/x": 0.1})["vdp_op/x"][:, 0]
    late = x[steps // 2:]
    assert np.max(np.abs(late)) == pytest.approx(2.0, abs=0.02)
    t = record_times(dt, steps)[steps // 2:]
    up = np.nonzero((late[:-1] < 0) & (late[1:] >= 0))[0]
    crossings = t[up] + dt * (-late[up]) / (late[up + 1] - late[up])
    assert np.diff(crossings).mean() == pytest.approx(6.6633, abs=0.01)


def test_stuart_landau_matches_reference():
    compare(SL, rhs_stuart_landau, ["sl_op/x", "sl_op/y"], {"sl_op/x": 0.1, "sl_op/y": 0.0}, dt=5e-3, steps=2000)


def test_stuart_landau_radius_is_sqrt_mu():
    res = simulate(model(SL), 0.02, 3000, params={"sl_op/mu": 0.25, "sl_op/omega": 3.0})
    radius = np.hypot(res["sl_op/x"][-500:, 0], res["sl_op/y"][-500:, 0])
    np.testing.assert_allclose(radius, 0.5, rtol=1e-6)


def test_fhn_matches_reference():
    compare(FHN, rhs_fhn, ["fhn_op/v", "fhn_op/w"], {}, dt=0.01, steps=10000,
            inputs={"fhn_op/I_ext": 0.5}, args=(0.5,))


def test_fhn_rest_and_repetitive_firing():
    mod = model(FHN)
    rest = simulate(mod, 0.05, 2000)
    assert np.max(np.abs(rest["fhn_op/v"] - (-1.1994080352439838))) < 1e-6  # default state is the rest state
    firing = simulate(mod, 0.05, 4000, inputs={"fhn_op/I_ext": 0.5})["fhn_op/v"][2000:, 0]
    assert firing.max() > 1.5 and firing.min() < -1.5


# --- Hodgkin-Huxley (1952) --------------------------------------------------------------------

HH = "neuron_model_templates.conductance.hodgkin_huxley.hh"


def test_hh_default_state_is_rest():
    init = model(HH).initial_state(1)
    m, h, n = hh_rest()
    np.testing.assert_allclose([init["hh_op/v"][0], init["hh_op/m"][0], init["hh_op/h"][0],
                                init["hh_op/n"][0]], [-65.0, m, h, n], rtol=1e-9)


def test_hh_matches_reference():
    m, h, n = hh_rest()
    compare(HH, rhs_hh, ["hh_op/v", "hh_op/m", "hh_op/h", "hh_op/n"],
            {"hh_op/v": -65.0, "hh_op/m": m, "hh_op/h": h, "hh_op/n": n}, dt=0.01, steps=3000,
            inputs={"hh_op/I_ext": 10.0}, args=(10.0,), tol=1e-5)


def test_hh_fires_repetitively_at_10_and_not_at_0():
    dt, steps = 0.02, 5000  # 100 ms; unit 0 gets 0 uA/cm^2, unit 1 gets 10 uA/cm^2
    drive = np.tile([0.0, 10.0], (steps, 1))
    v = simulate(model(HH), dt, steps, n=2, inputs={"hh_op/I_ext": drive})["hh_op/v"]
    spikes = np.sum((v[:-1] < 0) & (v[1:] >= 0), axis=0)
    assert spikes[0] == 0 and np.max(v[:, 0]) < -60
    assert spikes[1] >= 5  # about 68 Hz: 6-7 spikes in 100 ms
    late = v[steps // 2:, 1]
    assert np.sum((late[:-1] < 0) & (late[1:] >= 0)) >= 3  # still firing in the second half


def test_hh_never_nan_at_singular_voltages():
    """alpha_m is 0/0 at v = -40 mV, alpha_n at -55 mV: the RHS must be finite and equal the limits."""
    mod = model(HH)
    v = np.array([-55.0, -40.0, -55.0 + 1e-9, -40.0 - 1e-9, -65.0, 0.0, 50.0, -100.0])
    n_units = v.size
    m, h, n = np.full(n_units, 0.3), np.full(n_units, 0.5), np.full(n_units, 0.4)
    y = {"hh_op/v": v.copy(), "hh_op/m": m, "hh_op/h": h, "hh_op/n": n}
    inputs = {name: np.full(n_units, value) for name, value in mod.INPUTS.items()}
    dy = mod.rhs(0.0, y, mod.default_params(), inputs)
    want = np.array(rhs_hh(0.0, [np.round(v, 6), m, h, n]))  # the limits at the exact singular points
    for i, name in enumerate(["hh_op/v", "hh_op/m", "hh_op/h", "hh_op/n"]):
        got = np.asarray(dy[name], dtype=float).reshape(-1)
        assert np.all(np.isfinite(got)), (name, got)
        np.testing.assert_allclose(got, want[i], rtol=1e-6, atol=1e-9, err_msg=name)
    # and a whole run started exactly at a singular voltage stays finite
    res = simulate(mod, 0.01, 100, y0={"hh_op/v": -40.0})
    assert all(np.all(np.isfinite(res[name])) for name in mod.STATES)


# --- Lorenz (1963) --------------------------------------------------------------------------------

LORENZ = "model_templates.chaos.lorenz.lorenz"


def test_lorenz_matches_reference():
    compare(LORENZ, rhs_lorenz, ["lorenz_op/x", "lorenz_op/y", "lorenz_op/z"], {}, dt=1e-3, steps=5000)


def test_lorenz_bounded_with_positive_lyapunov_exponent():
    """Two trajectories 1e-8 apart (units of one population), renormalised every time unit.

    The largest Lyapunov exponent of the Lorenz attractor is about 0.906.
    """
    mod = model(LORENZ)
    dt, every, segments, d0 = 0.01, 100, 50, 1e-8
    start = simulate(mod, dt, 1000)["final"]  # 10 time units of transient
    state = {name: np.repeat(np.asarray(start[name], dtype=float).reshape(-1)[:1], 2) for name in mod.STATES}
    state["lorenz_op/x"][1] += d0
    total, lo, hi = 0.0, np.full(3, np.inf), np.full(3, -np.inf)
    names = ["lorenz_op/x", "lorenz_op/y", "lorenz_op/z"]
    for _ in range(segments):
        res = mod.run(state, {}, {}, dt, every)
        traj = np.stack([res[s][:, 0] for s in names])
        lo, hi = np.minimum(lo, traj.min(axis=1)), np.maximum(hi, traj.max(axis=1))
        a = np.array([res["final"][s][0] for s in names])
        b = np.array([res["final"][s][1] for s in names])
        d = np.linalg.norm(b - a)
        total += np.log(d / d0)
        b = a + (b - a) * d0 / d
        state = {s: np.array([a[i], b[i]]) for i, s in enumerate(names)}
    lyapunov = total / (segments * every * dt)
    assert 0.6 < lyapunov < 1.2, lyapunov
    assert -25 < lo[0] and hi[0] < 25 and -35 < lo[1] and hi[1] < 35 and 0 < lo[2] and hi[2] < 55, (lo, hi)


def _shipped_nodes():
    from modelc.resources import resource_dir
    from modelc.spec import Library, NodeTemplate
    found = Library([resource_dir("models")]).scan()
    assert not found.skipped, [error.format() for error in found.skipped]
    return [(dotted, t) for dotted, t in found.templates if isinstance(t, NodeTemplate)]


@pytest.mark.parametrize("dotted", [d for d, _ in _shipped_nodes()])
def test_every_shipped_node_runs_as_a_network_population(dotted):
    """Each node template as a Network population of 3 units gives the module's own trajectory."""
    from modelc import Network
    mod = compile_model(dotted, method="rk4")
    output = list(mod.STATES)[0]
    net = Network(dt=1e-3)
    net.add_diffeq_node("pop", dotted, N=3, output_var=output, method="rk4")
    obs = net.run(steps=50)
    expected = mod.run(mod.initial_state(3), {}, {}, 1e-3, 50, record=[output])[output]
    assert obs["out"].shape == (50, 3)
    assert np.allclose(obs["out"], expected, rtol=1e-12, atol=1e-12)


def test_a_module_docstring_shows_equations_after_their_edits():
    """qif_sfa edits its parent's `eta` into `eta - a`: the module says what it integrates."""
    doc = model("model_templates.neural_mass_models.qif.qif_sfa").__doc__
    assert "qif_sfa_op: v' = (I_ext + J*r*tau - a + eta - pi^2*r^2*tau^2 + r_in*tau + v^2)/tau" in doc
    assert "eta + I_ext" not in doc  # the parent's text, before the edit


@pytest.mark.parametrize("dotted", [d for d, _ in _shipped_nodes()])
def test_every_declared_parameter_and_input_of_a_shipped_node_is_read(dotted):
    """A variable no equation reads is dropped from the layout; no shipped model declares one."""
    from modelc.ir import build_system
    from modelc.spec import load
    node = load(dotted)
    system = build_system(node)
    for use in node.operators:
        for var in use.operator.variables.values():
            name = f"{use.operator.name}/{var.name}"
            if var.kind == "parameter":
                assert name in system.params, name
            elif var.kind == "input":
                assert name in system.inputs or name in system.outputs, name


# --- models at the front end's limits (modelc/equations/limits.py) ---------------------------
# The limits leave room for everything after parsing (SymPy, the printers, Python compiling the
# module): an equation just within them compiles and runs on every path, one step further is refused.

AT_THE_LIMITS = {  # shape -> (equation of n levels or terms, the largest n accepted)
    "calls": (lambda n: "sin(" * n + "x" + ")" * n, 100),
    "products": (lambda n: "x*(1 + " * n + "x" + ")" * n, 50),
    "powers": (lambda n: "x^" * n + "x", 100),
    "sigmoids": (lambda n: "sigmoid(" * n + "x" + ")" * n, 25),
    "choices": (lambda n: "where(x > 0, 1, " * n + "x" + ")" * n, 49),
    "minimum": (lambda n: "min(" + ", ".join(f"{i + 1}*x" for i in range(n)) + ")", 100),
    "exprel": (lambda n: "exprel(" * n + "x" + ")" * n, 100),
    "terms": (lambda n: " + ".join(f"sin({i + 1}*x)" for i in range(n)), 997),
}


def _limit_model(folder: Path, shape: str, n: int) -> Path:
    path = folder / f"{shape}.yaml"
    equation = "x' = " + AT_THE_LIMITS[shape][0](n)
    path.write_text(yaml.safe_dump({"o": {"base": "OperatorTemplate", "equations": equation,
                                          "variables": {"x": "output(0.5)"}}}), encoding="utf-8")
    return path


@pytest.mark.parametrize("shape", list(AT_THE_LIMITS))
def test_a_model_at_the_limits_compiles_and_runs_and_one_level_more_is_refused(shape, tmp_path):
    import sympy
    from modelc import compile_source
    from modelc.equations import expression_text
    from modelc.errors import EquationSyntaxError
    from modelc.ir import build_system
    from modelc.spec import load
    at_limit = _limit_model(tmp_path, shape, AT_THE_LIMITS[shape][1])
    for method in ("euler", "rk4"):
        mod = compile_model(f"{at_limit}:o", method=method)
        with np.errstate(all="ignore"):
            for n in (1, 3):  # one unit runs on Python floats, several on arrays
                mod.run(mod.initial_state(n), {}, {}, 1e-3, 3, on_nan="ignore")
    compile(compile_source(f"{at_limit}:o", method="rk4", backend="cupy"), "cupy_module", "exec")
    rhs = build_system(load(f"{at_limit}:o")).derivatives["o/x"]
    assert expression_text(rhs) and sympy.latex(rhs)  # what modelc show and the docs print
    with pytest.raises(EquationSyntaxError, match="nested too deeply|too long"):
        compile_model(f"{_limit_model(tmp_path, shape, AT_THE_LIMITS[shape][1] + 1)}:o")
