"""One small class per contender.  Each gets the workload and its shared data and offers
``setup()`` (build/compile; timed once), ``prepare()`` (reset to the initial state; not timed),
``run()`` (one whole simulation, recording the output every step; timed) and
``final_state()`` (an array comparable with the hand-written loop's).

A contender that cannot run says why through ``unavailable()``: ``"missing: <reason>"`` when a
package is not installed or modelc's API is not there yet, ``"n/a: <reason>"`` when the peer has
no such feature, ``"skipped: <reason>"`` when a flag leaves it out.  Nothing is ever faked.

The peers are imported lazily, so the suite runs without them.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import tempfile

import numpy as np

from . import handwritten
from .workloads import HH_MODEL, JR_MODEL, QIF_MODEL, SEED_COUPLING, SEED_MODEL, Workload

PEER_MAX_N = 1000     # peers above this take minutes and GBs; --peers-all lifts the cap


def _import(name: str):
    """Import a module or raise _Missing('missing: ...')."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        hint = "" if name == "modelc" else " in this Python; see benchmarks/setup_peers.sh"
        raise _Missing(f"missing: {exc.name or name} not installed{hint}") from exc
    except Exception as exc:  # a broken install (e.g. a NumPy mismatch)
        raise _Missing(f"missing: {name} not importable ({type(exc).__name__}: {exc})"[:160]) from exc


class _Missing(Exception):
    pass


@contextlib.contextmanager
def _scratch_cwd():
    """PyRates/RectiPy write generated files into the working directory: give them a temp one."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="modelc-bench-") as d:
        os.chdir(d)
        try:
            yield d
        finally:
            os.chdir(old)


class Contender:
    name = "?"
    kind = "modelc"          # "modelc" | "baseline" | "peer"
    families: tuple = ()     # workload families it can run
    note = ""                # how it is driven (shown under the table)

    def __init__(self, wl: Workload, data: dict):
        self.wl, self.data = wl, data

    @classmethod
    def unavailable(cls, wl: Workload, peers_all: bool = False) -> str | None:
        if wl.family not in cls.families:
            # the peers are not wired for issue 17's Hodgkin-Huxley circuit: no row at all
            return "n/a" if cls.kind == "peer" and wl.family == "hh" else cls.not_applicable(wl)
        if cls.kind == "peer" and wl.N > PEER_MAX_N and not peers_all:
            return f"skipped: N={wl.N} > {PEER_MAX_N} for peers (use --peers-all)"
        return None

    @classmethod
    def not_applicable(cls, wl: Workload) -> str:
        return "n/a"

    def preload(self):
        """Import what setup needs (not counted as setup time or setup memory)."""

    def setup(self):
        pass

    def prepare(self):
        pass

    def run(self):
        raise NotImplementedError

    def final_state(self) -> np.ndarray:
        raise NotImplementedError


# ----------------------------------------------------------------------------- baseline

class HandWritten(Contender):
    name = "hand-written in-place"
    kind = "baseline"
    families = ("seed", "qif", "jr", "hh", "sweep")
    note = ("THE BASELINE (speed ratios and agreement are against it): the hand-written NumPy loop "
            "of issues 2 and 6 -- preallocated buffers, in-place ufuncs (out=, +=), written the way "
            "the equations read: r = tanh(v), J@r, dv = -v/tau + k*(J@r) + I[t] + eta, v += dt*dv, "
            "rec[t] = v (per RK4 stage likewise); nothing hoisted. Python floats for the single "
            "systems (QIF, Jansen-Rit, Hodgkin-Huxley RK4 with one derivative function called per "
            "stage); one (B,N) matrix product per step for a sweep")

    def setup(self):
        self.loop = handwritten.for_workload(self.wl, self.data)

    def run(self):
        self.loop.run()

    def final_state(self):
        return self.loop.final_state()


class HandOptimised(HandWritten):
    name = "hand-optimised (compiler's tricks by hand)"
    families = ("seed", "sweep")
    note = ("the in-place loop plus modelc's code-generation tricks applied by hand: dt*k*J and "
            "1 - dt/tau hoisted, dt*(I + eta) computed for all steps before the loop, the record "
            "row doubling as the next state -- a floor for generated NumPy, not the issues' baseline")

    def setup(self):
        self.loop = handwritten.optimised_for_workload(self.wl, self.data)


class HandWrittenSequential(Contender):
    name = "hand-written, one set at a time"
    kind = "baseline"
    families = ("sweep",)
    note = "the sweep as B separate hand-written in-place loops"

    def setup(self):
        d = self.data
        self.loop = handwritten.SeedSequential(d["J"], d["inputs"], self.wl.dt, d["taus"])

    def run(self):
        self.loop.run()

    def final_state(self):
        return self.loop.final_state()


# ----------------------------------------------------------------------------- modelc
# The only places that know modelc's naming; adjust here if the API moves.

def _modelc(need=("compile_model",)):
    mc = _import("modelc")
    for attr in need:
        try:
            getattr(mc, attr)
        except Exception as exc:
            raise _Missing(f"missing: modelc.{attr} not there yet ({type(exc).__name__}: {exc})"[:160])
    return mc


def find_name(names, wanted: str) -> str:
    """``wanted`` ("li_op/v") among ``names``: exact, else the one name ending in "/wanted"."""
    names = list(names)
    if wanted in names:
        return wanted
    hits = [n for n in names if n.endswith("/" + wanted)]
    if len(hits) == 1:
        return hits[0]
    raise KeyError(f"{wanted!r} not among {names}")


def weights_param(mod) -> str:
    """Name of the coupling-weight parameter of a module compiled with ``coupling=``."""
    params = list(mod.PARAMS)
    for cand in ("weights", "W", "J", "weight", "coupling/weights"):
        if cand in params:
            return cand
    hits = [p for p in params if "weight" in p.lower() or p.split("/")[-1] in ("W", "J")]
    if len(hits) == 1:
        return hits[0]
    raise KeyError(f"cannot tell the weight parameter among PARAMS {params}")


def _fresh(y0: dict, batch: int | None = None) -> dict:
    out = {}
    for k, v in y0.items():
        v = np.asarray(v, dtype=float)
        if batch is not None:
            v = np.broadcast_to(v, (batch,) + v.shape[-1:])
        out[k] = np.array(v)
    return out


class _ModelcBase(Contender):
    need = ("compile_model",)

    def preload(self):
        _modelc(self.need)


class ModelcModule(_ModelcBase):
    name = "modelc module.run"
    families = ("seed", "qif", "jr", "hh", "sweep")
    note = "modelc's generated module called directly (compile_model(...).run)"
    backend = "numpy"

    def setup(self):
        mc = _modelc()
        wl, d = self.wl, self.data
        if wl.family in ("seed", "sweep"):
            extra = {}
            if wl.family == "sweep":   # tau differs per parameter set: compile it as an array
                extra = dict(vector_params=("li_op/tau",))
            self.mod = mod = mc.compile_model(SEED_MODEL, method=wl.method,
                                              coupling=dict(SEED_COUPLING), backend=self.backend, **extra)
            self.params = {weights_param(mod): d["J"]}
            if wl.family == "sweep":
                self.params[find_name(mod.PARAMS, "li_op/tau")] = d["taus"][:, None]
            self.y0 = mod.initial_state(wl.N)
            self.inputs = {find_name(mod.INPUTS, SEED_COUPLING["input_var"]): d["inputs"]}
            self.out = find_name(mod.OUTPUTS, SEED_COUPLING["output_var"])
            self.compare = [find_name(mod.STATES, "li_op/v")]
        elif wl.family == "qif":
            self.mod = mod = mc.compile_model(QIF_MODEL, method=wl.method, backend=self.backend)
            self.params, self.y0 = {}, mod.initial_state(1)
            self.inputs = {find_name(mod.INPUTS, "qif_op/I_ext"): d["I_ext"]}
            self.out = find_name(mod.OUTPUTS, "qif_op/r")
            self.compare = [find_name(mod.STATES, s) for s in handwritten.QIF_STATES]
        elif wl.family == "hh":
            self.mod = mod = mc.compile_model(HH_MODEL, method=wl.method, backend=self.backend)
            self.params, self.y0 = {}, mod.initial_state(1)
            self.inputs = {find_name(mod.INPUTS, "hh_op/I_ext"): d["I_ext"]}
            self.out = find_name(mod.OUTPUTS, "hh_op/v")
            self.compare = [find_name(mod.STATES, s) for s in handwritten.HH_STATES]
        else:
            self.mod = mod = mc.compile_model(JR_MODEL, method=wl.method, backend=self.backend)
            self.params, self.inputs, self.y0 = {}, {}, mod.initial_state(1)
            self.out = find_name(mod.OUTPUTS, "pc/rpo_e_in_op/v")
            self.compare = [find_name(mod.STATES, s) for s in handwritten.JR_STATES]

    def prepare(self):
        self.y = _fresh(self.y0, self.wl.B if self.wl.family == "sweep" else None)

    def run(self):
        self.res = self.mod.run(self.y, self.params, self.inputs, self.wl.dt, self.wl.steps,
                                record=[self.out])

    def final_state(self):
        fin = self.res["final"]
        if len(self.compare) == 1:
            return np.asarray(fin[self.compare[0]])
        return np.array([np.asarray(fin[n]).ravel()[0] for n in self.compare])


class ModelcNetwork(_ModelcBase):
    name = "modelc Network.run"
    families = ("seed", "qif", "hh", "sweep")
    note = "modelc's user API: Network.add_diffeq_node + run (net.sweep for a sweep)"
    need = ("Network",)

    @classmethod
    def not_applicable(cls, wl):
        return "n/a: a circuit without an input variable is run through compile_model"

    def setup(self):
        mc = _modelc(self.need)
        wl, d = self.wl, self.data
        self.net = net = mc.Network(dt=wl.dt)
        if wl.family in ("seed", "sweep"):
            net.add_diffeq_node("tanh", SEED_MODEL, weights=d["J"], method=wl.method, **SEED_COUPLING)
            self.inputs = d["inputs"]
        elif wl.family == "qif":
            net.add_diffeq_node("qif", QIF_MODEL, N=1, input_var="qif_op/I_ext",
                                output_var="qif_op/r", method=wl.method)
            self.inputs = np.full((wl.steps, 1), d["I_ext"])
        else:
            net.add_diffeq_node("hh", HH_MODEL, N=1, input_var="hh_op/I_ext",
                                output_var="hh_op/v", method=wl.method)
            self.inputs = np.full((wl.steps, 1), d["I_ext"])

    def prepare(self):
        self.net.reset()

    def run(self):
        if self.wl.family == "sweep":
            self.obs = self.net.sweep({"li_op/tau": list(self.data["taus"])}, inputs=self.inputs,
                                      grid=True)
        else:
            self.obs = self.net.run(inputs=self.inputs)

    def final_state(self):
        if self.wl.family in ("qif", "hh"):
            states = handwritten.QIF_STATES if self.wl.family == "qif" else handwritten.HH_STATES
            return np.array([float(np.asarray(self.net.get_var(self.wl.family, v)).ravel()[0])
                             for v in states])
        return np.asarray(self.obs["out"])[-1]


class ModelcSequential(_ModelcBase):
    name = "modelc, one set at a time"
    families = ("sweep",)
    note = ("the sweep as B calls of the generated module's run, one parameter set each; every "
            "call's records are kept, as the batched run returns all B of them")
    backend = "numpy"

    def setup(self):
        mc = _modelc()
        wl, d = self.wl, self.data
        self.mod = mod = mc.compile_model(SEED_MODEL, method=wl.method, coupling=dict(SEED_COUPLING),
                                          backend=self.backend)
        self.w = weights_param(mod)
        self.tau = find_name(mod.PARAMS, "li_op/tau")
        self.y0 = mod.initial_state(wl.N)
        self.inputs = {find_name(mod.INPUTS, SEED_COUPLING["input_var"]): d["inputs"]}
        self.out = find_name(mod.OUTPUTS, SEED_COUPLING["output_var"])
        self.v = find_name(mod.STATES, "li_op/v")

    def run(self):
        self.results = [self.mod.run(_fresh(self.y0), {self.w: self.data["J"], self.tau: float(tau)},
                                     self.inputs, self.wl.dt, self.wl.steps, record=[self.out])
                        for tau in self.data["taus"]]

    def final_state(self):
        return np.stack([np.asarray(res["final"][self.v]) for res in self.results])


# ----------------------------------------------------------------------------- peers

class RectiPy(Contender):
    name = "RectiPy 0.12.2"
    kind = "peer"
    families = ("seed",)
    note = ("RectiPy: Network.add_diffeq_node (same template, float64) + run(verbose=False, "
            "enable_grad=False); torch CPU, 1 thread. It drops weights with |w| < 1e-6 "
            "(PyRates' min_weight), so at N=1000 its network differs slightly from J")

    @classmethod
    def not_applicable(cls, wl):
        if wl.family == "sweep":
            return "n/a: RectiPy has no batch axis (one trial per run call)"
        if wl.family == "qif":
            return ("n/a: RectiPy 0.12.2 fails on a one-unit node (TypeError in PyRates' "
                    "get_variable_positions)")
        return "n/a: RectiPy networks need an input variable; this circuit has none"

    @classmethod
    def unavailable(cls, wl, peers_all=False):
        why = super().unavailable(wl, peers_all)
        if why is None and wl.method != "euler":
            return "n/a: RectiPy integrates with explicit Euler only"
        return why

    def preload(self):
        _import("torch").set_num_threads(1)
        _import("rectipy")

    def setup(self):
        torch = _import("torch")
        torch.set_num_threads(1)
        rectipy = _import("rectipy")
        wl, d = self.wl, self.data
        with _scratch_cwd():
            self.net = net = rectipy.Network(dt=wl.dt, device="cpu")
            net.add_diffeq_node("tanh", SEED_MODEL, weights=d["J"], clear=True, verbose=False,
                                **SEED_COUPLING)
        self.inputs = torch.tensor(d["inputs"])

    def prepare(self):
        self.net.reset()

    def run(self):
        self.obs = self.net.run(self.inputs, verbose=False, enable_grad=False)

    def final_state(self):
        return self.net.get_node("tanh").y.detach().numpy().copy()


class PyRates(Contender):
    name = "PyRates 1.2.3"
    kind = "peer"
    families = ("seed", "qif", "jr")
    note = ("PyRates numpy backend: CircuitTemplate(.., populations=PopulationTemplate, "
            "connections=Connectivity) for the network, the YAML circuit for the single systems; "
            "get_run_func(float64) driven by a plain Euler loop (as RectiPy drives it)")

    @classmethod
    def not_applicable(cls, wl):
        return "n/a: PyRates has no batch axis (grid_search recompiles per set)"

    @classmethod
    def unavailable(cls, wl, peers_all=False):
        why = super().unavailable(wl, peers_all)
        if why is None and wl.method != "euler":
            return "n/a: PyRates 1.2.3 has no fixed-step RK4 (euler, heun, scipy)"
        return why

    def preload(self):
        _import("pyrates")

    def setup(self):
        pr = _import("pyrates")
        wl, d = self.wl, self.data
        kw = dict(backend="default", solver="euler", clear=True, verbose=False,
                  float_precision="float64")
        with _scratch_cwd():
            if wl.family == "seed":
                node = pr.NodeTemplate.from_yaml(SEED_MODEL)
                circ = pr.CircuitTemplate(
                    "net", populations={"p": pr.PopulationTemplate("p", node, wl.N)},
                    connections=[pr.Connectivity("p/tanh_op/r", "p/li_op/r_in", weights=d["J"])])
                func, args, keys, idx = circ.get_run_func("seed_rhs", wl.dt, **kw)
                self.in_slot = list(keys).index("p/li_op/I_ext")
                self.sl = slice(*idx["p/li_op/v"])
                self.compare = None
            elif wl.family == "qif":
                node = pr.NodeTemplate.from_yaml(QIF_MODEL.replace(".yaml:", "/"))
                circ = pr.CircuitTemplate("qc", nodes={"p": node})
                func, args, keys, idx = circ.get_run_func("qif_rhs", wl.dt, **kw)
                args = list(args)
                args[list(keys).index("p/qif_op/I_ext")] = np.asarray(d["I_ext"], float)
                self.in_slot = None
                self.compare = [idx["p/" + s] for s in handwritten.QIF_STATES]
                self.sl = self.compare[0]
            else:
                circ = pr.CircuitTemplate.from_yaml(JR_MODEL.replace(".yaml:", "/"))
                # vectorize=False keeps one named state per node (ein and iin would be merged)
                func, args, keys, idx = circ.get_run_func("jr_rhs", wl.dt, vectorize=False, **kw)
                self.in_slot = None
                self.compare = [idx[s] for s in handwritten.JR_STATES]
                self.sl = self.compare[0]
        self.func, self.args0 = func, list(args)
        self.y0 = np.array(args[1])

    def prepare(self):
        self.args = list(self.args0)
        self.args[1] = self.y0.copy()

    def run(self):
        f, a, dt, steps = self.func, self.args, self.wl.dt, self.wl.steps
        y = a[1]
        out = np.empty((steps,) + np.shape(y[self.sl]))
        slot, inp = self.in_slot, self.data.get("inputs")
        for t in range(steps):
            if slot is not None:
                a[slot] = inp[t]
            a[0] = t
            dy = f(*a)
            y += dt * dy
            out[t] = y[self.sl]
        self.out = out

    def final_state(self):
        y = self.args[1]
        if self.compare is None:
            return y[self.sl].copy()
        return np.array([float(np.ravel(y[i])[0]) for i in self.compare])


class Brian2(Contender):
    name = "Brian2 (numpy target)"
    kind = "peer"
    families = ("seed", "qif", "jr")
    note = ("Brian2, numpy target: NeuronGroup with the same ODEs, TimedArray input, StateMonitor; "
            "the dense J@tanh(v) coupling in a network_operation (when='start') -- what Brian2's "
            "docs suggest for arbitrary Python per step; Synapses would make N^2 objects")

    @classmethod
    def not_applicable(cls, wl):
        return "n/a: no batch axis (B copies of the network would be needed)"

    @classmethod
    def unavailable(cls, wl, peers_all=False):
        why = super().unavailable(wl, peers_all)
        if why is None and wl.method != "euler" and wl.family == "seed":
            return ("n/a: Brian2 holds a network_operation's coupling fixed over a step, "
                    "so its rk4 is not the network's RK4")
        return why

    def preload(self):
        _import("brian2")

    def setup(self):
        b2 = _import("brian2")
        b2.prefs.codegen.target = "numpy"
        wl, d = self.wl, self.data
        second = b2.second
        b2.defaultclock.dt = wl.dt * second
        objs = []
        if wl.family == "seed":
            I_in = b2.TimedArray(d["inputs"], dt=wl.dt * second)
            G = b2.NeuronGroup(wl.N, "dv/dt = (-v/tau + k*r_in + I_in(t, i) + eta)/second : 1\n"
                                     "r_in : 1", method="euler",
                               namespace=dict(tau=10.0, k=1.0, eta=0.0, I_in=I_in))
            J = d["J"]

            @b2.network_operation(when="start")
            def couple():
                G.r_in_ = J @ np.tanh(G.v_)
            objs.append(couple)
            self.rec, self.compare = "v", ["v"]
        elif wl.family == "qif":
            G = b2.NeuronGroup(1, """
                dr/dt = (Delta/(pi*tau) + 2*r*v)/tau/second : 1
                dv/dt = (v**2 + eta + I_ext + J*r*tau - (pi*r*tau)**2)/tau/second : 1
                """, method="euler",
                namespace=dict(tau=1.0, Delta=1.0, eta=-5.0, J=15.0, I_ext=d["I_ext"]))
            G.r, G.v = 0.01, -2.0
            self.rec, self.compare = "r", ["r", "v"]
        else:
            G = b2.NeuronGroup(1, """
                m_pc = 2*e0/(1 + exp(s*(v_thr - pv - qv))) : 1
                m_e = 2*e0/(1 + exp(s*(v_thr - ev))) : 1
                m_i = 2*e0/(1 + exp(s*(v_thr - iv))) : 1
                dpv/dt = px/second : 1
                dpx/dt = (he*(108*m_e + u)/te - 2*px/te - pv/te**2)/second : 1
                dqv/dt = qx/second : 1
                dqx/dt = (hi*33.75*m_i/ti - 2*qx/ti - qv/ti**2)/second : 1
                dev/dt = ex/second : 1
                dex/dt = (he*135*m_pc/te - 2*ex/te - ev/te**2)/second : 1
                div/dt = ix/second : 1
                dix/dt = (he*33.75*m_pc/te - 2*ix/te - iv/te**2)/second : 1
                """, method="euler",
                namespace=dict(he=3.25, te=0.01, hi=-22.0, ti=0.02, u=220.0, e0=2.5, s=0.56,
                               v_thr=6.0))
            self.rec, self.compare = "pv", ["pv", "px", "qv", "qx", "ev", "ex", "iv", "ix"]
        self.mon = b2.StateMonitor(G, self.rec, record=True)
        self.G = G
        self.net = b2.Network(G, self.mon, *objs)
        self.net.store()
        self.b2 = b2

    def prepare(self):
        self.net.restore()

    def run(self):
        self.net.run(self.wl.steps * self.wl.dt * self.b2.second)

    def final_state(self):
        if self.wl.family == "seed":
            return np.array(self.G.v_[:])
        return np.array([float(getattr(self.G, n + "_")[0]) for n in self.compare])


def _numba_missing() -> str | None:
    if importlib.util.find_spec("numba") is None:
        return "skipped: numba not installed (pip install modelc[compiled])"
    return None


class OnNumba:
    """A modelc contender on backend='numba', skipped where numba is not installed (a mixin: first base)."""

    backend = "numba"

    @classmethod
    def unavailable(cls, wl, peers_all=False):
        return _numba_missing() or super().unavailable(wl, peers_all)


class ModelcNumba(OnNumba, ModelcModule):
    name = "modelc numba module.run"
    note = ("backend='numba' (issue 17): the module's chunk of steps compiled by numba; setup includes the "
            "compile and numba's JIT (a 1-step run), the timed runs are cache hits")

    def setup(self):
        super().setup()
        y = _fresh(self.y0, self.wl.B if self.wl.family == "sweep" else None)
        inputs = {k: v[:1] if np.ndim(v) else v for k, v in self.inputs.items()}
        self.mod.run(y, self.params, inputs, self.wl.dt, 1, record=[self.out])  # numba's JIT (or its cache)


class ModelcNumbaThreads(ModelcNumba):
    name = "modelc numba module.run, threads=2"
    families = ("sweep",)
    note = "the same module, the sweep's B sets split between 2 threads (run(..., threads=2))"

    def run(self):
        self.res = self.mod.run(self.y, self.params, self.inputs, self.wl.dt, self.wl.steps, record=[self.out],
                                threads=2)


class ModelcNumbaSequential(OnNumba, ModelcSequential):
    name = "modelc numba, one set at a time"
    note = ("the sweep as B calls of the numba module's run (one thread), one parameter set each: the "
            "one-at-a-time baseline of issue 17's sweep target on the compiled backend")

    def setup(self):
        super().setup()
        inputs = {k: v[:1] for k, v in self.inputs.items()}
        self.mod.run(_fresh(self.y0), {self.w: self.data["J"], self.tau: 10.0}, inputs, self.wl.dt, 1,
                     record=[self.out])  # numba's JIT (or its cache)


class HandNumba(Contender):
    name = "hand-written numba loop (@njit, np.dot)"
    kind = "baseline"
    families = ("seed", "sweep")
    note = ("the seed step written by hand in one @njit loop: r = tanh(v) fused, (dt*k*J) @ r by np.dot "
            "(gemv; gemm over a sweep's B sets; numba calls SciPy's BLAS), v = (1 - dt/tau)*v + p + "
            "dt*(I + eta) fused")

    @classmethod
    def unavailable(cls, wl, peers_all=False):
        if wl.family in cls.families and wl.method != "euler":
            return "n/a: Euler only"
        return _numba_missing() or super().unavailable(wl, peers_all)

    def setup(self):
        from . import hand_numba
        self.loop = hand_numba.for_workload(self.wl, self.data)
        self.loop.run(steps=1)  # the JIT

    def run(self):
        self.loop.run()

    def final_state(self):
        return self.loop.final_state()


class HandC(Contender):
    name = "hand-written C loop (NumPy's BLAS)"
    kind = "baseline"
    families = ("seed", "sweep", "qif", "jr", "hh")
    blas = "numpy"
    note = ("issue 17's reference: the seed step by hand in C (benchmarks/hand_c.py), one call runs the "
            "loop: r = tanh(v) fused, (dt*k*J) @ r by cblas_dgemv (one dgemm per step over a sweep's B "
            "sets) of the OpenBLAS NumPy ships (numpy.libs, ILP64), v = (1 - dt/tau)*v + p + dt*(I + eta) "
            "fused into the record row; cc -O3 -march=native at setup (no fast-math), loaded with ctypes. "
            "The single-unit circuits (QIF, Jansen-Rit, Hodgkin-Huxley RK4) as plain C loops over doubles")

    @classmethod
    def unavailable(cls, wl, peers_all=False):
        from . import hand_c
        why = super().unavailable(wl, peers_all)
        if why is None and wl.family in ("seed", "sweep") and wl.method != "euler":
            return "n/a: Euler only"
        if why is None and hand_c.c_compiler() is None:
            return "skipped: no C compiler"
        return why

    def setup(self):
        from . import hand_c
        try:
            self.loop = hand_c.for_workload(self.wl, self.data, self.blas)
        except hand_c.Unavailable as exc:
            raise _Missing(str(exc)) from exc

    def prepare(self):
        self.loop.reset()

    def run(self):
        self.loop.run()

    def final_state(self):
        return self.loop.final_state()


class HandCScipyBlas(HandC):
    name = "hand-written C loop, SciPy's BLAS"
    families = ("seed", "sweep")
    blas = "scipy"
    note = ("the same C loop calling SciPy's OpenBLAS (scipy.libs, LP64), the library numba's np.dot "
            "calls: tells a BLAS version's share of a gap from the loop's")


ALL = [HandWritten, HandOptimised, ModelcNetwork, ModelcModule, HandWrittenSequential,
       ModelcSequential, RectiPy, PyRates, Brian2, ModelcNumba, ModelcNumbaThreads, ModelcNumbaSequential,
       HandNumba, HandC, HandCScipyBlas]
