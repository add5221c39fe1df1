"""The current state of a Network: each state variable's value and the steps run since reset().

A run starts from it and leaves its final values in it; a population that has not run yet
starts from its initial values (the template's, overridden by node_vars).
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

from ...errors import InvalidValueError
from .device import to_host
from .graph import Graph, Node


class States:
    """ "label/op/var" -> current value (n,), and the number of steps run since reset()."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.values: dict[str, np.ndarray] = {}
        self.steps_done = 0

    def current(self, graph: Graph, module: ModuleType) -> dict[str, np.ndarray]:
        """The state of every population of the compiled module (a new dict, the same arrays)."""
        for name, initial in module.STATES.items():
            if name not in self.values:
                label, local = name.split("/", 1)
                node = graph.nodes[label]
                self.values[name] = self._array(node.values.get(local, initial), node, module.DTYPE)
        for name in [n for n in self.values if n not in module.STATES]:
            del self.values[name]
        return dict(self.values)

    def set(self, graph: Graph, module: ModuleType, node: Node, local: str, value) -> None:
        """Set a state's current value (one number or one per unit): the next run continues from it."""
        name = f"{node.label}/{local}"
        if name not in module.STATES:
            raise InvalidValueError(f"'{local}' of node '{node.label}' is computed by an equation; it has no value "
                                    "to set", None, "set the states or parameters it is computed from")
        self.current(graph, module)
        self.values[name] = self._array(value, node, module.DTYPE)

    def advance(self, final: dict, steps: int) -> None:
        """After a run of `steps` steps that ended in the states `final`."""
        self.values = {name: to_host(value) for name, value in final.items()}
        self.steps_done += steps

    def drop(self, label: str) -> None:
        """Forget the states of a removed node."""
        for name in [n for n in self.values if n.startswith(label + "/")]:
            del self.values[name]

    def reset(self) -> None:
        self.values.clear()
        self.steps_done = 0

    def _array(self, value, node: Node, module_dtype) -> np.ndarray:
        """A state's value for every unit, in the network's dtype (complex where the module computes in complex)."""
        dtype = np.result_type(self.dtype, module_dtype)
        return np.array(np.broadcast_to(np.asarray(value, dtype=dtype), (node.n,)))
