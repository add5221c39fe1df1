"""The template classes: what a model file describes, after inheritance, before parsing.

Equations stay text here (`MarkedStr`, so errors can point into the file); edits of an
inherited operator's equations are recorded and applied by the IR stage on parsed
expressions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Location
from .marked_yaml import MarkedStr

KINDS = ("OperatorTemplate", "NodeTemplate", "EdgeTemplate", "CircuitTemplate")


@dataclass
class VariableSpec:
    """One entry of an operator's `variables:`."""

    name: str
    kind: str  # "parameter", "output", "input" or "variable"
    default: float | complex  # complex: a complex variable (PyRates' `variable(-0.6-0.8j)`, `input(complex)`)
    location: Location | None = None
    unit: str | None = None
    description: str | None = None


@dataclass
class EquationEdits:
    """`equations: {replace:, add:, remove:}` of an inheriting operator, applied after parsing."""

    replace: list[tuple[MarkedStr, MarkedStr]] = field(default_factory=list)
    add: list[MarkedStr] = field(default_factory=list)
    remove: list[MarkedStr] = field(default_factory=list)
    location: Location | None = None


@dataclass
class OperatorTemplate:
    path: str  # the full dotted path, pkg.sub.file.template
    name: str
    equations: list[MarkedStr]
    edits: list[EquationEdits]  # in order, the oldest ancestor's first
    variables: dict[str, VariableSpec]
    description: str = ""
    location: Location | None = None
    events: dict = field(default_factory=dict)  # name -> spec.events.EventSpec (threshold-reset rules)


@dataclass
class OperatorUse:
    """An operator inside a node, with the node's value overrides for it."""

    operator: OperatorTemplate
    overrides: dict[str, tuple[float | complex, Location | None]] = field(default_factory=dict)


@dataclass
class NodeTemplate:
    path: str
    name: str
    operators: list[OperatorUse]
    description: str = ""
    location: Location | None = None


@dataclass
class EdgeTemplate:
    """Operators that transform an edge's source signal before it reaches the target: in a
    circuit, a population of its own between source and target (one unit per connection)."""

    path: str
    name: str
    operators: list[OperatorUse]
    description: str = ""
    location: Location | None = None


@dataclass
class EdgeSpec:
    """One row of a circuit's `edges:`: `target += weight * source` (paths node/op/var).

    With an edge template, `target += weight * output of the edge's operators`; `bindings` feed
    the edge's inputs ("op/var" -> "source" or a path node/op/var) and `overrides` set its values
    (op -> {var: (value, where it is set)}). Without bindings the edge's one free input reads the source."""

    source: str
    target: str
    weight: float = 1.0
    location: Location | None = None
    template: EdgeTemplate | None = None
    bindings: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, dict[str, tuple[float | complex, Location | None]]] = field(default_factory=dict)
    delay: float = 0.0      # the source as it was `delay` time units ago (0 before the run began)
    spread: float = 0.0     # > 0: a gamma-distributed delay of mean `delay` (PyRates' chain of linear ODEs)


@dataclass
class CircuitTemplate:
    path: str
    name: str
    nodes: dict[str, NodeTemplate]
    edges: list[EdgeSpec]
    description: str = ""
    location: Location | None = None
    circuits: dict[str, "CircuitTemplate"] = field(default_factory=dict)  # label -> a circuit inside this one


Template = OperatorTemplate | NodeTemplate | EdgeTemplate | CircuitTemplate


def summary(template: Template) -> str:
    """The first line of a template's description (what `modelc list` shows)."""
    text = (template.description or "").strip()
    return text.splitlines()[0].strip() if text else ""
