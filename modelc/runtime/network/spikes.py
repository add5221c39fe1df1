"""RectiPy's spiking options of add_diffeq_node, as events of the node's template.

    net.add_diffeq_node("qif", "neuron_model_templates.spiking_neurons.qif.qif", weights=J,
                        source_var="qif_op/s", target_var="qif_op/s_in", spike_var="qif_op/spike",
                        reset_var="qif_op/v", spike_threshold=1e2, spike_reset=-1e2)

gives the operator of reset_var the event `spike_var` (named by spike_var's own name, so
record_vars=[("qif", "spike")] records its spike counts): when reset_var >= spike_threshold
(> with spike_center=0), spike_var receives the spike train H/dt and, with reset=True, reset_var
is set to spike_reset after the step (the semantics of an event: codegen/step.py). An event of
the template that already emits into spike_var is replaced. Lists give several pairs.

The surrogate-gradient settings (spike_slope, default 100/|threshold - reset| as RectiPy's,
and spike_center) are kept on the node (Node.spiking), never process-wide.
"""
from __future__ import annotations

import dataclasses
import math

from ...errors import SpikeOptionError
from ...spec import NodeTemplate, OperatorTemplate, OperatorUse
from ...spec.events import EventSpec
from .graph import Node
from .variables import resolve


@dataclasses.dataclass(frozen=True)
class Spiking:
    """A node's spike/reset pairs and its surrogate-gradient settings."""

    spike_vars: tuple[str, ...]    # "op/var" inputs that receive the spike trains
    reset_vars: tuple[str, ...]    # "op/var" states that are thresholded (and reset)
    thresholds: tuple[float, ...]
    resets: tuple[float, ...]
    reset: bool                    # False: the equations reset themselves; the event only emits
    slopes: tuple[float, ...]      # fast-sigmoid surrogate slope of each pair
    center: float                  # the Heaviside value at 0 (1: reset_var == threshold spikes)


def add_spiking(node: Node, spike_var, reset_var, spike_threshold, spike_reset, reset: bool, spike_slope,
                spike_center) -> None:
    """Check the spiking options and give the node its events (node.template) and settings (node.spiking)."""
    if spike_var is None and reset_var is None:
        if spike_slope is not None:
            raise SpikeOptionError(f"node '{node.label}': spike_slope is a setting of spiking nodes", None,
                                   "pass spike_var= and reset_var= too")
        return
    spikes, resets = _names(node, spike_var, "spike_var", ("input",)), _names(node, reset_var, "reset_var",
                                                                             ("variable", "output"))
    if len(spikes) != len(resets):
        raise SpikeOptionError(f"node '{node.label}': {len(spikes)} spike_var but {len(resets)} reset_var", None,
                               "give one reset_var (the thresholded state) per spike_var")
    thresholds = _numbers(spike_threshold, len(spikes), "spike_threshold")
    values = _numbers(spike_reset, len(spikes), "spike_reset")
    if spike_center not in (0, 1):
        raise SpikeOptionError(f"spike_center must be 0 or 1 (the Heaviside value at 0), got {spike_center!r}")
    slopes = tuple(100.0 / abs(t - r) if t != r else 100.0 for t, r in zip(thresholds, values)) \
        if spike_slope is None else _numbers(spike_slope, len(spikes), "spike_slope", positive=True)
    for spike, state in zip(spikes, resets):
        if spike.split("/")[0] != state.split("/")[0]:
            raise SpikeOptionError(f"node '{node.label}': spike_var '{spike}' and reset_var '{state}' belong to "
                                   "different operators", None, "an event emits into an input of its own operator")
    node.spiking = Spiking(spikes, resets, thresholds, values, bool(reset), slopes, float(spike_center))
    node.template = with_events(node.template, node.spiking)


def with_events(template, spiking: Spiking):
    """The template with one event per spike/reset pair on the operator of its reset_var."""
    events: dict[str, list[EventSpec]] = {}
    for spike, state, threshold, value, slope in zip(spiking.spike_vars, spiking.reset_vars, spiking.thresholds,
                                                     spiking.resets, spiking.slopes):
        op, input_name = spike.split("/", 1)
        var = state.split("/", 1)[1]
        comparison = ">=" if spiking.center == 1 else ">"
        events.setdefault(op, []).append(EventSpec(
            input_name, f"{var} {comparison} {threshold!r}", [f"{var} = {value!r}"] if spiking.reset else [],
            input_name, description="added by add_diffeq_node(spike_var=..., reset_var=...)", slope=slope))
    if isinstance(template, OperatorTemplate):
        return _operator_with(template, events.get(template.name, []))
    uses = [OperatorUse(_operator_with(use.operator, events.get(use.operator.name, [])), dict(use.overrides))
            for use in template.operators]
    return dataclasses.replace(template, operators=uses)


def _operator_with(op: OperatorTemplate, added: list[EventSpec]) -> OperatorTemplate:
    if not added:
        return op
    replaced = {e.emit for e in added} | {e.name for e in added}
    kept = {name: e for name, e in op.events.items() if e.emit not in replaced and name not in replaced}
    return dataclasses.replace(op, events={**kept, **{e.name: e for e in added}})


def _names(node: Node, given, what: str, kinds) -> tuple[str, ...]:
    if given is None:
        other = "reset_var" if what == "spike_var" else "spike_var"
        raise SpikeOptionError(f"node '{node.label}': {other} needs {what}", None,
                               "spike_var is the input that receives the spikes, reset_var the state that is "
                               "thresholded (and reset)")
    names = [given] if isinstance(given, str) else list(given)
    return tuple(resolve(node, name, kinds=kinds, what=what) for name in names)


def _numbers(given, count: int, what: str, positive: bool = False) -> tuple[float, ...]:
    values = list(given) if isinstance(given, (list, tuple)) else [given] * count
    if len(values) != count:
        raise SpikeOptionError(f"{what} has {len(values)} values for {count} spike_var", None,
                               "give one value, or one per spike_var")
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise SpikeOptionError(f"{what} must be a number (or a list of numbers), got {given!r}") from None
    if not all(math.isfinite(v) and (v > 0 or not positive) for v in numbers):
        raise SpikeOptionError(f"{what} must be {'positive ' if positive else ''}finite, got {given!r}")
    return numbers
