"""Readouts fitted without gradients (RectiPy's fit_ridge and fit_rls): ridge regression in
closed form, and recursive least squares online while the network runs (FORCE learning).

fit_ridge solves (XᵀX + αI) W = XᵀY over every row X the output node records (every sampled
step of the sequence, or of every trial) with np.linalg.solve. There is no bias, as in
RectiPy's formula: a constant input unit gives one. W has the edge layout (n_targets, n).

fit_rls trains the one edge made with add_edge(..., train="rls"), which must end at the output
node: the network runs update_steps at a time from its current state, and between chunks the
edge's weights take one RLS step on the chunk's last recorded row — the edge's source output x
and the output's error e = target - output. The rule assumes the output is W x (an identity
readout node), which is what makes it least squares. The edge keeps P from one fit_rls to the
next, as RectiPy's RLS edge does: a second call goes on learning where the first stopped (alpha
only sets the first P). A list of sequences (or an array (B, T, n_in)) is learnt one sequence
after another (RectiPy's epochs), each from the network's state at the call, which stays.
"""
from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from ...errors import InvalidValueError, ShapeError, WiringError
from ..observer import Observer
from .arguments import output_name, run_inputs
from .device import to_host
from .fitting import observer, trials, windows
from .graph import Edge, Graph
from .nodes import edge, func_node
from .states import States
from .variables import parameter_values

READOUT = "readout"  # the label of the node fit_ridge adds


# -- ridge regression ----------------------------------------------------------------

def fit_ridge(graph: Graph, states: States, module: ModuleType, dt: float, inputs, targets,
              sampling_steps: int, alpha: float, add_readout_node: bool) -> Observer:
    """Network.fit_ridge: run, solve for the readout, optionally add it as node "readout"."""
    if add_readout_node:
        graph.check_new_label(READOUT)  # a clear error before the run, not after it
    alpha, sampling_steps = _number(alpha, "alpha", lowest=0.0), _count(sampling_steps, "sampling_steps")
    steps, given, targets, batch = trials(graph, module, inputs, targets, states.dtype)
    output, t0 = output_name(graph), states.steps_done * dt
    _check_rows(targets, steps // sampling_steps, batch)
    result = module.run(states.current(graph, module), parameter_values(graph), given, dt, steps, record=[output],
                        sampling_steps=sampling_steps, t0=t0)
    if batch is None:  # a sequence goes on from where it ends, as run() does; trials leave the state
        states.advance(result["final"], steps)
    outputs = to_host(result[output])
    weights = ridge_weights(outputs, targets, alpha)
    if add_readout_node:
        add_readout(graph, weights, states.dtype)
    return observer(dt, sampling_steps, t0, outputs, y=outputs @ weights.T, w_out=weights)


def ridge_weights(outputs: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """The weights W (k, n) minimising |X Wᵀ - Y|² + alpha |W|² over all rows of the records
    X (..., n) and the targets Y (..., k), from the normal equations (XᵀX + αI) Wᵀ = XᵀY."""
    X = outputs.reshape(-1, outputs.shape[-1]).astype(np.float64)
    Y = np.asarray(targets, dtype=np.float64).reshape(-1, np.shape(targets)[-1])
    gram = X.T @ X
    gram[np.diag_indices_from(gram)] += alpha
    try:
        return np.linalg.solve(gram, X.T @ Y).T
    except np.linalg.LinAlgError:
        raise InvalidValueError("the readout's normal equations are singular (outputs that never vary, or fewer "
                                "rows than units, with alpha=0)", None, "use alpha > 0") from None


def add_readout(graph: Graph, weights: np.ndarray, dtype: np.dtype) -> None:
    """An identity node "readout" fed from the output node by weights (k, n): it becomes the output."""
    source = graph.node(graph.output_label())
    target = graph.add_node(func_node(READOUT, len(weights), "identity"))
    graph.add_edge(edge(source, target, weights, None, None, False, None, dtype))


def _check_rows(targets: np.ndarray, rows: int, batch: int | None, columns: int | None = None) -> None:
    """Targets (rows, [B,] k), k = columns if given — trials' targets come here with the batch
    axis second — checked before the run rather than after it."""
    expected = (rows,) if batch is None else (rows, batch)
    if targets.ndim != len(expected) + 1 or targets.shape[:-1] != expected or columns not in (None, targets.shape[-1]):
        layout, given = f"(T // sampling_steps, {columns or 'k'})", targets.shape
        if batch is not None:
            layout, given = "(B, T // sampling_steps, k)", np.swapaxes(targets, 0, 1).shape
        raise ShapeError(f"targets must have shape {layout} with T // sampling_steps = {rows}, got {given}", None,
                         "one row per recorded output row, k columns for a readout of k units "
                         "(one-hot rows for classes)")


# -- recursive least squares ------------------------------------------------------------

class RecursiveLeastSquares:
    """Recursive least squares for weights W (k, n), forgetting factor beta in (0, 1], P = I/alpha
    at the start. For a sample x (n,) whose output W x missed its target by e (k,):

        g = P x / (beta + xᵀ P x),   W += e gᵀ,   P = (P - g (P x)ᵀ) / beta

    With beta = 1 and W = 0 at the start, W after samples x_1..x_t is the ridge solution for
    those samples with the same alpha (the reason P starts at I/alpha).
    """

    def __init__(self, weights: np.ndarray, alpha: float, beta: float, P: np.ndarray | None = None):
        self.weights = np.array(weights, dtype=np.float64)  # a copy: the caller's array stays as it is
        alpha = _number(alpha, "alpha", lowest=0.0, open_low=True)
        self.P = np.eye(self.weights.shape[1]) / alpha if P is None else P.copy()  # P: where learning stopped
        self.beta = _number(beta, "beta", lowest=0.0, open_low=True, highest=1.0)

    def update(self, x: np.ndarray, error: np.ndarray) -> None:
        Px = self.P @ x
        gain = Px / (self.beta + x @ Px)
        self.weights += np.outer(error, gain)
        self.P -= np.outer(gain, Px)
        self.P /= self.beta


def fit_rls(graph: Graph, states: States, module: ModuleType, dt: float, inputs, targets, update_steps: int,
            sampling_steps: int, beta: float, alpha: float) -> Observer:
    """Network.fit_rls: chunks of update_steps steps, one RLS step on the trained edge after each;
    one sequence goes on from the current state, a list of them each start there and leave it."""
    trained = rls_edge(graph)
    update_steps, sampling_steps = _count(update_steps, "update_steps"), _count(sampling_steps, "sampling_steps")
    if update_steps % sampling_steps:
        raise InvalidValueError(f"update_steps ({update_steps}) must be a multiple of sampling_steps "
                                f"({sampling_steps}): each update uses the chunk's last recorded row")
    rule = RecursiveLeastSquares(trained.weights, alpha, beta, trained.rls_P)
    steps, sequences, targets, batch = _sequences(graph, module, inputs, targets, states.dtype)
    _check_rows(targets, steps // sampling_steps, batch, columns=graph.node(trained.target).n)
    y0, t0 = states.current(graph, module), states.steps_done * dt
    per_sequence = [targets] if batch is None else np.swapaxes(targets, 0, 1)
    learnt = [_learn(graph, module, rule, trained, y0, given, rows, steps, dt, t0, update_steps, sampling_steps,
                     states.dtype) for given, rows in zip(sequences, per_sequence)]
    trained.rls_P = rule.P
    if batch is None:
        states.advance(learnt[0][2], steps)
    outputs = learnt[0][0] if batch is None else np.stack([out for out, _, _ in learnt], axis=1)
    return observer(dt, sampling_steps, t0, outputs, loss=np.concatenate([loss for _, loss, _ in learnt]))


def _sequences(graph: Graph, module: ModuleType, inputs, targets, dtype) -> tuple[int, list, np.ndarray, int | None]:
    """(steps, the module inputs of each sequence, targets, batch): one sequence (batch None), or
    a list of them / an array (B, T, n_in) with targets (B, T // sampling_steps, k) — the targets
    with the batch axis second, as trials() gives them."""
    if not (isinstance(inputs, (list, tuple)) or np.ndim(inputs) == 3):
        steps, given = run_inputs(graph, module, inputs, None, batch=None, dtype=dtype)
        return steps, [given], np.asarray(targets, dtype=np.float64), None
    found = [run_inputs(graph, module, x, None, batch=None, dtype=dtype) for x in inputs]
    if len({steps for steps, _ in found}) != 1:
        raise ShapeError(f"the sequences of fit_rls must have one length, got {sorted({s for s, _ in found})} steps")
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim < 2 or len(targets) != len(found):
        raise ShapeError(f"{len(found)} sequences need targets (B = {len(found)}, T // sampling_steps, k), "
                         f"got shape {targets.shape}")
    return found[0][0], [given for _, given in found], np.swapaxes(targets, 0, 1), len(found)


def _learn(graph: Graph, module: ModuleType, rule: RecursiveLeastSquares, trained: Edge, y0: dict, given: dict,
           targets: np.ndarray, steps: int, dt: float, t0: float, update_steps: int, sampling_steps: int,
           dtype) -> tuple[np.ndarray, np.ndarray, dict]:
    """One sequence, update_steps at a time: (its outputs, the loss at each update, final states)."""
    source, output = f"{trained.source}/{trained.source_var}", output_name(graph)
    params = parameter_values(graph)  # built once: only the trained edge's matrix changes
    matrix = next(name for name, weights in graph.matrices().items() if weights is trained.weights)
    outputs, losses = [], []
    for start, stop, window in windows(given, steps, update_steps):
        result = module.run(y0, params, window, dt, stop - start, record=[source, output],
                            sampling_steps=sampling_steps, t0=t0 + start * dt)
        y0, recorded = result["final"], to_host(result[output])
        outputs.append(recorded)
        if len(recorded):  # a last chunk shorter than sampling_steps records nothing
            error = targets[start // sampling_steps + len(recorded) - 1] - recorded[-1]
            rule.update(to_host(result[source])[-1], error)
            trained.weights = params[matrix] = rule.weights.astype(dtype)
            losses.append(float(np.mean(error ** 2)))
    return np.concatenate(outputs), np.array(losses), y0


def rls_edge(graph: Graph) -> Edge:
    """The one edge made with train="rls"; it ends at the output node, whose error drives it."""
    edges = [e for e in graph.edges.values() if e.train == "rls"]
    if len(edges) != 1:
        raise WiringError("no edge is trained by RLS" if not edges else
                          f"fit_rls trains one edge, but {len(edges)} have train='rls' "
                          f"({', '.join(f'{e.source} -> {e.target}' for e in edges)})", None,
                          "mark the readout edge with add_edge(source, readout, weights, train='rls')")
    output = graph.output_label()
    if edges[0].target != output:
        raise WiringError(f"the RLS edge {edges[0].source} -> {edges[0].target} must end at the output node "
                          f"'{output}': its error drives the update", None,
                          "train the edge into the readout node, the one without outgoing edges")
    return edges[0]


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _number(value, name: str, lowest: float, open_low: bool = False, highest: float = math.inf) -> float:
    """A finite number in [lowest, highest] ((lowest, highest] with open_low)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidValueError(f"{name} must be a number, got {value!r}") from None
    low_ok = number > lowest if open_low else number >= lowest
    if not (low_ok and number <= highest and math.isfinite(number)):
        bounds = ("(" if open_low else "[") + f"{lowest:g}, " + (f"{highest:g}]" if math.isfinite(highest) else "inf)")
        raise InvalidValueError(f"{name} must lie in {bounds}, got {value!r}")
    return number
