"""Network: a RectiPy-style graph of populations and edges, compiled into ONE generated module.

    from modelc import Network
    net = Network(dt=1e-3)
    net.add_diffeq_node("tanh", "neuron_model_templates.rate_neurons.leaky_integrator.tanh",
                        weights=J, source_var="tanh_op/r", target_var="li_op/r_in",
                        input_var="li_op/I_ext", output_var="li_op/v")
    obs = net.run(inputs=np.ones((10000, N)))

Weight convention (recurrent weights and edges alike): ``weights[i, j]`` is the weight from
unit j of the source to unit i of the target, so ``target_input = weights @ source_output``;
a matrix has shape (n_target, n_source) and is never transposed silently.

Every node and edge becomes part of one System (modelc.ir.build_network) and one generated
module, cached by the network's structure only (templates, labels, connections, which
parameters are per-unit vectors, method, dtype) — never by weight values or population
sizes, so compiling does not depend on N and a network with other weights reuses the module.
A run is one call into the generated ``run``: no per-step Python graph traversal and no
per-step bookkeeping here. Time convention: see arguments.py.

One call at a time changes a Network: a run, a sweep, set_var, reset or a graph edit made
while another is in progress (from another thread) is a NetworkBusyError, never two runs
mixed into one state. Reading (get_var, state, time) during a run sees the state before it.
"""
from __future__ import annotations

import dataclasses
import threading
from types import ModuleType

import numpy as np

from ...errors import InvalidValueError, NonFiniteError, UnsupportedFeatureError
from ...spec import load
from ...training import get_loss, loss_and_gradients
from ..compiler import compile_network
from ..observer import Observer
from . import fitting, readout
from .arguments import drives, module_sampling_steps, output_name, records, run_inputs, window_means
from .busy import exclusive
from .device import backend_for, dtype_name
from .graph import Edge, Graph, Node
from .spikes import add_spiking
from .nodes import diffeq_node, drive_connections, drive_populations, edge, func_node, trainable, wire_diffeq_node
from .progress import ProgressBar
from .states import States
from .sweep import Sweep, run_in_chunks
from .variables import (check_node_values, current_value, domain_error, node_value, node_var_names,
                        parameter_value, parameter_values, readonly, recurrent_weights, resolve)


class Network:
    """A graph of populations (diff-eq and function nodes) and weighted edges; see the module docs.

    Network(dt, device="cpu", dtype="float64"). device="cuda" selects the CuPy backend and
    fails with BackendUnavailableError when CuPy or a GPU is missing (never a silent fallback
    to NumPy).
    """

    def __init__(self, dt: float, device: str = "cpu", dtype: str = "float64", backend: str | None = None):
        try:
            dt = float(dt)
        except (TypeError, ValueError):
            raise InvalidValueError(f"dt must be a number, got {dt!r}") from None
        if not (dt > 0 and np.isfinite(dt)):
            raise InvalidValueError(f"dt must be a positive number, got {dt!r}")
        self.dt = dt
        self.dtype = dtype_name(dtype)
        self.device = str(device)
        self.backend = backend_for(self.device, backend)  # backend="numba": the compiled CPU backend
        self._np_dtype = np.dtype(self.dtype)
        self._graph = Graph()
        self._states = States(self._np_dtype)
        self._compiled: dict[tuple, ModuleType] = {}  # signature -> module, of the graph's current version
        self._noise_streams = None  # the random generators the last run left: its noise goes on from there
        self._history = None  # (graph version, the delays' histories the last run left): the next run goes on
        self._lock = threading.Lock()  # held by the one call that changes the network (see exclusive)
        self._busy_with = "another call"  # what holds the lock, for the message

    # -- building -------------------------------------------------------------------

    @exclusive
    def add_diffeq_node(self, label: str, node, input_var: str | None = None, output_var: str | None = None,
                        weights=None, source_var: str | None = None, target_var: str | None = None, *,
                        N: int | None = None, node_vars: dict | None = None, train_params=None,
                        op: str | None = None, method: str = "euler", spike_var=None, reset_var=None,
                        spike_threshold=1e2, spike_reset=-1e2, reset: bool = True, spike_slope=None,
                        spike_center: float = 1.0) -> Node:
        """Add a population of N units of a node template (a dotted path, "file.yaml:template" or a
        template), or N copies of a circuit template (N=1: the circuit itself). The positional
        order is RectiPy's: label, node, input_var, output_var, weights.

        weights:   (N, N) recurrent matrix, ``weights[i, j]`` from unit j to unit i:
                   target_var = weights @ source_var. Sets N (or pass N= without weights).
        input_var: the input(...) variable driven by ``run(inputs=...)`` (and by incoming edges).
        output_var: the variable handed to outgoing edges and recorded as ``obs["out"]``.
        node_vars: {"op/var": value} parameters, initial values of states, or constant values of
                   free inputs; a value is one number or an array of N (one per unit). With
                   ``op="li_op"`` the short names ("tau") work too; so does any name that only
                   one operator of the node has. "all/op/var" is RectiPy's key for the same.
                   A circuit's variables are "node/op/var" (in every name argument);
                   "all/op/var" sets op/var on every node of the circuit that has it.
        train_params: parameter names recorded for fitting ("weights" = the recurrent matrix).
        method:    integration scheme (euler, heun, midpoint, rk4); all nodes must agree.
        spike_var, reset_var, spike_threshold, spike_reset, reset, spike_slope, spike_center:
                   RectiPy's spiking options, an event added to the node (see spikes.py).
        """
        self._graph.check_new_label(label)
        entry = diffeq_node(label, load(node), weights, N, op, method, self._np_dtype)
        wire_diffeq_node(entry, source_var, target_var, input_var, output_var)
        for name, value in (node_vars or {}).items():
            for local in node_var_names(entry, name):
                entry.values[local] = node_value(entry, local, value, self._np_dtype)
        add_spiking(entry, spike_var, reset_var, spike_threshold, spike_reset, reset, spike_slope, spike_center)
        entry.train_params = trainable(entry, train_params)
        return self._graph.add_node(entry)

    @exclusive
    def add_func_node(self, label: str, n: int, activation_function: str = "identity") -> Node:
        """Add a stateless node of n units, y = activation_function(x), one of identity, tanh,
        sigmoid, relu, softmax, softmin, log_softmax (softmax over the n units).

        Without incoming edges, its x is driven by ``run(inputs=...)`` (an input layer);
        incoming edges are summed into x (a readout).
        """
        self._graph.check_new_label(label)
        return self._graph.add_node(func_node(label, n, activation_function))

    @exclusive
    def add_edge(self, source: str, target: str, weights=None, source_var: str | None = None,
                 target_var: str | None = None, feedback: bool = False, train: str | None = None,
                 delays=None) -> Edge:
        """Connect two nodes: target's input_var += weights @ source's output_var.

        weights has shape (n_target, n_source): ``weights[i, j]`` is the weight from source unit j
        to target unit i (never transposed); a number c means c times the identity (equal sizes).
        Weights are never drawn at random for you (random_connectivity does that, on request).
        Several edges into one node are summed, and with run(inputs=...) driving the same
        variable, the input adds up with them. source_var/target_var override the node's
        output_var/input_var. feedback=True marks an edge that closes a loop, so the input and
        output nodes of the graph are still found; it changes nothing in the dynamics: every
        coupling reads the source as the step starts, which under euler is its output after the
        previous step (RectiPy's FeedbackNetwork); other methods read it at each stage.
        delays: RectiPy's delays=, whole steps >= 1, one per source unit (or one for all): the edge
        reads source unit j as it was delays[j] steps ago (0 before the first run began; later
        stages of heun/rk4 read the history at their own times, see docs/delays.md).
        """
        src, tgt = self._graph.node(source), self._graph.node(target)
        made = edge(src, tgt, weights, source_var, target_var, feedback, train, self._np_dtype)
        if delays is not None:
            made = dataclasses.replace(made, delays=self.dt * edge_delays(delays, src.n, f"{source} -> {target}"))
        return self._graph.add_edge(made)

    @exclusive
    def pop_node(self, label: str) -> Node:
        """Remove a node, its edges and its state; returns the removed node."""
        node = self._graph.pop_node(label)
        self._states.drop(label)
        return node

    @exclusive
    def pop_edge(self, source: str, target: str) -> Edge:
        """Remove the edge source -> target; returns it (its weights in .weights)."""
        return self._graph.pop_edge(source, target)

    def get_edge(self, source: str, target: str) -> Edge:
        return self._graph.edge(source, target)

    def get_node(self, label: str) -> Node:
        return self._graph.node(label)

    # -- inspection -----------------------------------------------------------------

    @property
    def nodes(self) -> list[str]:
        return list(self._graph.nodes)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return list(self._graph.edges)

    def __len__(self) -> int:
        return len(self._graph.nodes)

    def __contains__(self, label) -> bool:
        return label in self._graph.nodes

    def __iter__(self):
        return iter(self._graph.nodes)

    @property
    def n_in(self) -> int:
        return self._graph.node(self._graph.input_label()).n

    @property
    def n_out(self) -> int:
        return self._graph.node(self._graph.output_label()).n

    @property
    def state(self) -> dict[str, dict[str, np.ndarray]]:
        """{node: {"op/var": current value}} of every state (copies)."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for name, value in self._states.current(self._graph, self.compile()).items():
            label, local = name.split("/", 1)
            out.setdefault(label, {})[local] = value.copy()
        return out

    @property
    def time(self) -> float:
        """The network's current time: steps run since the last reset() times dt."""
        return self._states.steps_done * self.dt

    def __repr__(self) -> str:
        lines = [f"Network(dt={self.dt:g}, device={self.device!r}, dtype={self.dtype!r}): "
                 f"{len(self._graph.nodes)} nodes, {len(self._graph.edges)} edges"]
        lines += [f"  {node!r}" for node in self._graph.nodes.values()]
        lines += [f"  edge {e.source}/{e.source_var} -> {e.target}/{e.target_var} {e.weights.shape}"
                  for e in self._graph.edges.values()]
        return "\n".join(lines)

    # -- values ---------------------------------------------------------------------

    def get_var(self, node: str, var: str):
        """A parameter's value, the current value of a state or computed variable, or "weights".

        Arrays come back read-only (copy them to change them; change values with set_var).
        """
        entry = self._graph.node(node)
        if var == "weights" and entry.weights is not None:
            return readonly(entry.weights)
        local = resolve(entry, var, what="variable")
        if entry.variables[local].kind == "parameter":
            return readonly(parameter_value(entry, local))
        module = self.compile()
        states = self._states.current(self._graph, module)
        return current_value(self._graph, module, states, entry, local, self.time)

    @exclusive
    def set_var(self, node: str, var: str, value) -> None:
        """Set a parameter (one number or one per unit), "weights", a free input's constant value,
        or the current value of a state (the next run continues from it; reset() goes back to
        the initial values of the template and node_vars)."""
        entry = self._graph.node(node)
        if var == "weights" and entry.weights is not None:
            entry.weights = recurrent_weights(entry, value, self._np_dtype)
            return
        local = resolve(entry, var, what="variable")
        value = node_value(entry, local, value, self._np_dtype)
        if entry.variables[local].kind in ("parameter", "input"):
            entry.values[local] = value  # a scalar that became per-unit recompiles: see compile()
        else:
            self._states.set(self._graph, self.compile(), entry, local, value)

    @exclusive
    def reset(self) -> None:
        """Back to time 0 and the initial states (template defaults, overridden by node_vars)."""
        self._states.reset()
        self._history = None

    # -- compiling ------------------------------------------------------------------

    def compile(self, method: str | None = None, extra_vector_params=(), inputs=None) -> ModuleType:
        """The generated module of the whole network (compiled once per structure, then cached).

        The structure includes which parameters are per-unit vectors: setting one number where
        there was an array (or the other way round) compiles another module. With a run's
        inputs, it includes a drive (nodes.py) for each driven variable that the network feeds
        too (by edges, a circuit's own edges or another operator), so that both add up."""
        module = self._module(method, extra_vector_params, ())
        wanted = drives(self._graph, module, inputs)
        return self._module(method, extra_vector_params, wanted) if wanted else module

    def _module(self, method: str | None, extra_vector_params, with_drives: tuple[str, ...]) -> ModuleType:
        method = method or self._graph.method()
        vector = tuple(sorted(set(self._graph.vector_params()) | set(extra_vector_params)))
        signature = (self._graph.version, method, vector, with_drives)
        if signature not in self._compiled:
            populations = {label: node.template for label, node in self._graph.nodes.items()}
            populations.update(drive_populations(with_drives))
            connections = self._graph.connections() + drive_connections(with_drives)
            module = compile_network(populations, connections, method=method, backend=self.backend,
                                     dtype=self.dtype, vector_params=vector, name="network",
                                     trainable=self._graph.trainables().values())
            check_node_values(self._graph, module)
            self._compiled = {key: value for key, value in self._compiled.items() if key[0] == self._graph.version}
            self._compiled[signature] = module
        return self._compiled[signature]

    # -- running --------------------------------------------------------------------

    @exclusive
    def run(self, inputs=None, sampling_steps: int = 1, record_output: bool = True, record_vars=None,
            verbose: bool = False, method: str | None = None, on_nan: str = "raise", *, steps: int | None = None,
            output: str | None = None, sampling: str = "snapshot", seed=None) -> Observer:
        """Integrate the network for T steps (one call into the generated code); returns an Observer.

        inputs: (T, n_in) for the input node, (T,) or (T, 1) broadcast to its n_in units, or a
                dict {node_label: array} (or {(node, "op/var"): array}) for several inputs; None
                with steps=T runs without external input. Edges into the driven variable add up
                with the input.
        sampling_steps: record every k-th step. Row k of every record is the value after step
                (k + 1) * sampling_steps, i.e. at time t0 + (k + 1) * sampling_steps * dt;
                obs["out"] has shape (T // sampling_steps, n_out). A k that does not divide T
                warns: the last T % k steps run but are not recorded.
        sampling: "snapshot" (the value after the window's last step, as above) or "mean" (the
                mean of the values after each step of the window; RectiPy 0.12 averages the
                output so, of the values before each step). "mean" records every step first.
        record_output: record the output node's output_var as obs["out"] (`output=` chooses the
                output node when the graph does not tell).
        record_vars: [(node, var), ...], optionally (node, var, True) for the population mean
                (computed after the run from the full record).
        verbose: a progress bar (tqdm if installed, else a plain one on stderr), updated once per
                chunk of 1024 steps.
        on_nan: "raise" (NonFiniteError naming the variable, unit and steps), "warn" or "ignore".
        seed: the random numbers of white noise (xi in an equation): an int, a numpy SeedSequence
                or Generator (the generated run()'s seed); None goes on with the streams the last
                run left (fresh entropy at first), so run(steps=T, seed=s) then run(steps=T) draws
                the numbers of run(steps=2*T, seed=s).
        The run starts from the network's current state and time (the end of the last run,
        until reset()) and leaves the network in its final state.
        """
        module = self.compile(method, inputs=inputs)
        steps, inputs = run_inputs(self._graph, module, inputs, steps, batch=None, dtype=self._np_dtype)
        every = module_sampling_steps(steps, sampling_steps, sampling)
        y0 = self._states.current(self._graph, module)
        recorded = records(self._graph, record_output, record_vars, output)
        result = self._call(module, y0, parameter_values(self._graph), inputs, steps, recorded.names,
                            every, verbose, on_nan, self._noise_streams if seed is None else seed, self._histories())
        self._noise_streams = result.get("rng", self._noise_streams)
        self._keep_histories(result)
        t0 = self.time
        self._states.advance(result["final"], steps)
        if every != sampling_steps:
            result = window_means(result, recorded.names, sampling_steps)
        return recorded.observer(result, self.dt, sampling_steps, t0)

    @exclusive
    def sweep(self, params: dict, inputs=None, grid: bool = True, sampling_steps: int = 1,
              record_output: bool = True, record_vars=None, verbose: bool = False, method: str | None = None,
              on_nan: str = "raise", *, steps: int | None = None, output: str | None = None, scheduler=None,
              store=None, reduce=None, chunk_size: int | None = None, seed=None, names: dict | None = None):
        """Run B parameter sets at once, as ONE batched run along a leading batch axis.

        params: {var: [values]}, var as "op/var" (or a short name) when one node has it, else
                "node/op/var" or (node, var); values are numbers (or per-unit arrays). Parameters
                and initial values of states can be swept. grid=True: every combination
                (B = product of the lengths); grid=False: zip the lists (equal lengths).
        inputs: as in run(), shared by all sets, or (T, B, n_in) for one input per set.
        The sweep starts from the network's current state and leaves it unchanged. Records have
        shape (T // sampling_steps, B, n); obs.sweep lists the B parameter sets in batch order.
        seed: as in run(), for B streams: an int s gives set b the stream of
        SeedSequence(s).spawn(B)[b]; a list of B seeds gives set b what seed=seeds[b] gives run().

        With scheduler ("processes", a dask.distributed Client or cluster, or an address), store (a Zarr
        path, resumable), reduce ("mean", "max", "final", "peak_frequency" or a function) or
        chunk_size, the sets run in chunks of chunk_size sets and the result is an
        xarray.Dataset with dimensions (each swept variable, or `set` for grid=False), time,
        unit (modelc/runtime/distributed; needs modelc[distributed]). Its records are "out" and
        "node.op.var" ("node.op.var_mean" for a mean), or as names={(node, var): name} says.
        """
        sweep = Sweep(self._graph, params, grid)
        chunked = any(option is not None for option in (scheduler, store, reduce, chunk_size, names))
        module = self.compile(method, extra_vector_params=sweep.parameters(), inputs=inputs)
        steps, inputs = run_inputs(self._graph, module, inputs, steps, batch=sweep.size, dtype=self._np_dtype)
        self._refuse_delays(module, "a sweep of a network with delays starts from a new history, not from where "
                            "the network stands after a run", "reset() first", when=self._history is not None)
        if chunked:
            return run_in_chunks(sweep, module, self._states.current(self._graph, module),
                                 parameter_values(self._graph), inputs,
                                 records(self._graph, record_output, record_vars, output), self._np_dtype,
                                 verbose, dt=self.dt, steps=steps, sampling_steps=sampling_steps, t0=self.time,
                                 on_nan=on_nan, seed=seed, scheduler=scheduler, store=store, reduce=reduce,
                                 chunk_size=chunk_size, names=names)
        y0, values = sweep.batched(module, self._states.current(self._graph, module),
                                   parameter_values(self._graph), self._np_dtype)
        recorded = records(self._graph, record_output, record_vars, output)
        result = self._call(module, y0, values, inputs, steps, recorded.names, sampling_steps, verbose, on_nan, seed)
        return recorded.observer(result, self.dt, sampling_steps, self.time, sweep.table())

    # -- fitting (fitting.py) --------------------------------------------------------

    @exclusive
    def grad(self, inputs, targets, loss: str = "mse", sampling_steps: int = 1) -> tuple[float, dict]:
        """(loss, {name: gradient}) of loss(obs["out"], targets) for a run from the current state,
        which stays where it is. Names: "label/op/var" and "label/weights" for train_params,
        "source->target" for edges made with train="gd"; each gradient has its value's shape.
        For users who bring their own optimiser (set the new values with set_var)."""
        module = self.compile(inputs=inputs)
        names = fitting.trained_names(self._graph)
        steps, given, targets, _ = fitting.trials(self._graph, module, inputs, targets, self._np_dtype)
        value, gradients, _ = loss_and_gradients(module, self._states.current(self._graph, module),
                                                 parameter_values(self._graph), given, self.dt, steps,
                                                 output_name(self._graph), targets, get_loss(loss),
                                                 sampling_steps, self.time)
        return value, {name: gradients[module_name] for name, module_name in names.items()}

    @exclusive
    def fit_bptt(self, inputs, targets, optimizer: str = "sgd", optimizer_kwargs: dict | None = None,
                 loss: str = "mse", loss_kwargs: dict | None = None, lr: float = 1e-3, sampling_steps: int = 1,
                 update_steps: int = 100, epochs: int = 1, verbose: bool = False) -> Observer:
        """Fit the trainable parameters by backpropagation through time (the generated adjoint).

        inputs (T, n_in) with targets (T // sampling_steps, n_out): online truncated BPTT, one
        optimiser step every update_steps steps; the network's state goes on from step to step
        and is left at the end. A list of trials, or an array (B, T, n_in), with targets
        (B, T // sampling_steps, n_out): all trials run as one batch, one optimiser step per
        epoch, every epoch from the current state (which stays). Optimisers: sgd, adam, adamw,
        rmsprop, adagrad, rprop (torch's rules and defaults, optimizer_kwargs passed on); losses:
        mse, l1, nll, ce, kld. Returns an Observer with obs["out"] (the last pass), obs["loss"]
        (one per update) or obs["epoch_loss"] (one per epoch).
        """
        module = self.compile(inputs=inputs)
        trainer = fitting.Trainer(self._graph, optimizer, lr, optimizer_kwargs)
        steps, given, targets, batch = fitting.trials(self._graph, module, inputs, targets, self._np_dtype)
        y0, t0 = self._states.current(self._graph, module), self.time
        if batch is not None:
            return fitting.bptt_epochs(module, trainer, y0, given, targets, steps, self.dt, loss, loss_kwargs,
                                       sampling_steps, epochs, t0, verbose)
        obs, final = fitting.bptt_updates(module, trainer, y0, given, targets, steps, self.dt, loss, loss_kwargs,
                                          sampling_steps, update_steps, t0, verbose)
        self._states.advance(final, steps)
        return obs

    @exclusive
    def test(self, inputs, targets, loss: str = "mse", sampling_steps: int = 1) -> tuple[Observer, float]:
        """Run from the current state and score the output: (Observer, loss(obs["out"], targets)).
        One sequence leaves the state at its end, as run() does; trials (a batch) leave it as it was."""
        module = self.compile(inputs=inputs)
        steps, given, targets, batch = fitting.trials(self._graph, module, inputs, targets, self._np_dtype)
        output = output_name(self._graph)
        self._refuse_delays(module, "test() with trials of a network with delays starts from a new history, not "
                            "from where the network stands after a run", "reset() first",
                            when=batch is not None and self._history is not None)
        result = self._call(module, self._states.current(self._graph, module), parameter_values(self._graph), given,
                            steps, [output], sampling_steps, False, "raise", history=self._histories())
        t0 = self.time
        if batch is None:
            self._states.advance(result["final"], steps)
            self._keep_histories(result)
        value, _ = get_loss(loss)(result[output], np.asarray(targets))
        return fitting.observer(self.dt, sampling_steps, t0, result[output]), value

    @exclusive
    def fit_ridge(self, inputs, targets, sampling_steps: int = 1, alpha: float = 1e-4,
                  add_readout_node: bool = True) -> Observer:
        """Fit a linear readout W (k, n) of the output node in closed form: (XᵀX + alpha I) Wᵀ = XᵀY
        over every recorded row X (ridge regression, no bias; readout.py). inputs and targets as in
        fit_bptt, targets (..., k): a sequence goes on from the current state, trials start there and
        leave it. add_readout_node: W feeds a new identity node "readout", the output from now on.
        Returns an Observer: obs["out"] (X), obs["y"] (X Wᵀ, the fit) and obs["w_out"] (W)."""
        self._refuse_delays(self.compile(inputs=inputs), "fit_ridge of a network with delays is not supported yet (it "
                            "runs in parts, which would lose the delays' histories)", "use run() and fit the records")
        return readout.fit_ridge(self._graph, self._states, self.compile(inputs=inputs), self.dt,
                                 inputs, targets, sampling_steps, alpha, add_readout_node)

    @exclusive
    def fit_rls(self, inputs, targets, update_steps: int = 1, sampling_steps: int = 1, beta: float = 1.0,
                alpha: float = 1.0) -> Observer:
        """Fit the one edge made with train="rls", into the output node, online by recursive least
        squares (FORCE; readout.py): the network runs (T, n_in) from its current state update_steps at a
        time; after each chunk the weights take one RLS step on its last recorded row (targets
        (T // sampling_steps, n_out), or lists of both). P = I/alpha at first, kept on the edge; beta forgets.
        Returns an Observer: obs["out"] and obs["loss"] (the mean squared error at each update)."""
        self._refuse_delays(self.compile(inputs=inputs), "fit_rls of a network with delays is not supported yet (it "
                            "runs in parts, which would lose the delays' histories)", "use run() and fit the records")
        return readout.fit_rls(self._graph, self._states, self.compile(inputs=inputs), self.dt,
                               inputs, targets, update_steps, sampling_steps, beta, alpha)

    def _histories(self):
        """The delays' histories the last run left, while the graph is the one it ran."""
        return self._history[1] if self._history is not None and self._history[0] == self._graph.version else None

    def _keep_histories(self, result: dict) -> None:
        if "history" in result:
            self._history = (self._graph.version, result["history"])

    @staticmethod
    def _refuse_delays(module, message: str, hint: str, when: bool = True) -> None:
        """Where the delays' histories would not go on (a call that runs in parts or from a batch)."""
        if when and getattr(module, "DELAYED", None):
            raise UnsupportedFeatureError(message, None, hint)

    def _call(self, module, y0, params, inputs, steps, record, sampling_steps, verbose, on_nan, seed=None,
              history=None) -> dict:
        """One call into the generated run(), with the progress bar and a NonFiniteError for overflow."""
        bar = ProgressBar(steps) if verbose else None
        extra = {"seed": seed} if getattr(module, "NOISE", None) else {}  # (a model without noise has no streams)
        if getattr(module, "DELAYED", None):  # (nor one without delays histories)
            extra["history"] = history
        try:
            return module.run(y0, params, inputs, dt=self.dt, steps=steps, record=record,
                              sampling_steps=sampling_steps, t0=self.time,
                              on_chunk=bar.update if bar is not None else None, on_nan=on_nan, **extra)
        except FloatingPointError as exc:
            # (rhs() of a model with delays needs delayed values: no diagnosis before its first step)
            error = None if getattr(module, "DELAYED", None) else domain_error(module, y0, params, inputs, self.time)
            if error is not None:  # the values, not dt: say which
                raise error from None
            if isinstance(exc, NonFiniteError):
                raise
            raise NonFiniteError(str(exc), None, "reduce dt, or check parameters, weights and inputs") from None
        finally:
            if bar is not None:
                bar.close()


def edge_delays(delays, n_source: int, name: str) -> np.ndarray:
    """add_edge's delays: whole numbers of steps >= 1, one per source unit (a number for all)."""
    steps = np.asarray(delays)
    if steps.ndim == 0:
        steps = np.full(n_source, steps)
    if steps.shape != (n_source,) or not np.issubdtype(steps.dtype, np.number) or np.iscomplexobj(steps) or \
            not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)) or np.any(steps < 1):
        raise InvalidValueError(f"delays of edge {name} must be whole numbers of steps >= 1, one per source unit "
                                f"({n_source}), got {np.array2string(np.asarray(delays), threshold=6)}", None,
                                "leave delays out for an edge without delays")
    return steps.astype(float)


FeedbackNetwork = Network  # RectiPy's name for a network with feedback edges: every Network takes them
