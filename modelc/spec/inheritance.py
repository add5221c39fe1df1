"""Building a template from its YAML body and its parent (`base:`).

A child starts from a copy of its parent and changes what its body says: an operator's
variables and equations (given anew, or edited with replace/add/remove), a node's
operators and their values, a circuit's nodes and edges. References to other templates are
resolved through the Library, which guards against inheritance cycles.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import DuplicateDefinitionError, Location, TemplateFormatError, UnknownTemplateError, did_you_mean
from .marked_yaml import MarkedDict, MarkedList, excerpt
from .templates import (KINDS, CircuitTemplate, EdgeSpec, EdgeTemplate, NodeTemplate, OperatorTemplate, OperatorUse,
                        Template)
from .events import event_specs
from .validation import (check_keys, check_name, edge, equation_edits, equation_texts, overrides, text_field,
                         variable)

if TYPE_CHECKING:
    from .library import Library


class _Header(NamedTuple):
    """What every template has: where it comes from, its names and its description."""

    file: Path
    dotted: str  # pkg.sub.file.template
    name: str
    description: str
    location: Location


def build_template(library: "Library", file: Path, name: str, body: Any, location: Location) -> Template:
    """The template `name` of `file` from its body, with its parent's content where it inherits."""
    check_name(name, location, "template")
    if not isinstance(body, MarkedDict):
        raise TemplateFormatError(f"template '{name}' must be a mapping with a 'base:' key", location)
    base = body.get("base")
    if not isinstance(base, str):
        raise TemplateFormatError(f"template '{name}' needs 'base:' (one of {', '.join(KINDS)} "
                                  "or another template)", body.where("base") if "base" in body else location)
    description = text_field(body, "description", "")
    parent = None if base in KINDS else _parent(library, file, base, body.where_value("base"))
    kind = base if parent is None else type(parent).__name__
    header = _Header(file, f"{library.dotted_name(file)}.{name}", name,
                     description or (parent.description if parent else ""), location)
    if kind == "OperatorTemplate":
        return _operator(header, body, parent)
    if kind in ("NodeTemplate", "EdgeTemplate"):
        return _node(library, header, body, parent, NodeTemplate if kind == "NodeTemplate" else EdgeTemplate)
    return _circuit(library, header, body, parent)


def _parent(library: "Library", file: Path, base: str, location: Location) -> Template:
    try:
        return library.get(base, here=file, location=location)
    except UnknownTemplateError as exc:
        if "." not in base and exc.hint and "holds" in exc.hint:  # a misspelled kind, most likely
            exc.hint = did_you_mean(base, list(KINDS) + list(library.load_file(file))) or exc.hint
        raise


def _operator(header: _Header, body: MarkedDict, parent: OperatorTemplate | None) -> OperatorTemplate:
    check_keys(body, {"base", "equations", "variables", "description", "label", "events"}, "an operator")
    equations = list(parent.equations) if parent else []
    edits = list(parent.edits) if parent else []
    if isinstance(body.get("equations"), MarkedDict):
        if parent is None:
            raise TemplateFormatError("equation edits (replace/add/remove) need a base operator to edit",
                                      body.where("equations"))
        edits.append(equation_edits(body["equations"]))
    elif "equations" in body:
        equations, edits = equation_texts(body, header.name), []  # new equations replace every inherited one
    elif parent is None:
        raise TemplateFormatError(f"operator '{header.name}' has no 'equations:'", header.location)
    variables = dict(parent.variables) if parent else {}
    raw = body.get("variables")
    if raw is not None:
        if not isinstance(raw, MarkedDict):
            raise TemplateFormatError("'variables:' must be a mapping of names to values",
                                      body.where_value("variables"))
        variables.update((name, variable(name, value, raw)) for name, value in raw.items())
    return OperatorTemplate(header.dotted, header.name, equations, edits, variables, header.description,
                            header.location, event_specs(body, parent.events if parent else {}))


def _node(library: "Library", header: _Header, body: MarkedDict, parent: NodeTemplate | EdgeTemplate | None,
          kind: type[NodeTemplate] | type[EdgeTemplate]) -> NodeTemplate | EdgeTemplate:
    """A node or an edge template: both are operators wired by name."""
    what = "a node" if kind is NodeTemplate else "an edge"
    check_keys(body, {"base", "operators", "description", "label"}, what)
    raw = body.get("operators")
    if raw is None and parent is None and kind is NodeTemplate:  # an edge without operators is a plain edge
        raise TemplateFormatError(f"node '{header.name}' has no 'operators:'", header.location)
    uses = [OperatorUse(u.operator, dict(u.overrides)) for u in parent.operators] if parent else []
    if isinstance(raw, str):  # one operator, named without a list
        raw = MarkedList([raw])
        raw.location, raw.item_locations = body.where_value("operators"), [body.where_value("operators")]
    if isinstance(raw, MarkedList):
        uses = _operator_list(library, header, raw)
    elif isinstance(raw, MarkedDict):
        uses = _operator_map(library, header.file, raw, uses)
    elif raw is not None:
        raise TemplateFormatError("'operators:' must be a list of operator names or a mapping",
                                  body.where_value("operators"))
    return kind(header.dotted, header.name, uses, header.description, header.location)


def _operator_list(library: "Library", header: _Header, raw: MarkedList) -> list[OperatorUse]:
    """`operators: [a, b]`: the node's operators, each once, with their own values."""
    uses, seen = [], set()
    for reference, location in zip(raw, raw.item_locations):
        use = OperatorUse(_operator_ref(library, reference, header.file, location))
        if use.operator.name in seen:
            raise DuplicateDefinitionError(f"operator '{use.operator.name}' appears twice in node '{header.name}'",
                                           location, "each operator may be used once in a node")
        seen.add(use.operator.name)
        uses.append(use)
    return uses


def _operator_map(library: "Library", file: Path, raw: MarkedDict, inherited: list[OperatorUse]) -> list[OperatorUse]:
    """`operators: {a: {tau: 5.0}, b: null}`: operators with new values, added to the inherited ones."""
    by_name = {use.operator.name: use for use in inherited}
    for reference, values in raw.items():
        operator = _operator_ref(library, reference, file, raw.where(reference))
        use = by_name.get(operator.name) or OperatorUse(operator)
        use.overrides.update(overrides(values, raw.where_value(reference), operator))
        by_name[operator.name] = use
    return list(by_name.values())


def _operator_ref(library: "Library", reference: Any, file: Path, location: Location) -> OperatorTemplate:
    operator = library.get(str(reference), here=file, location=location) if isinstance(reference, str) else None
    if not isinstance(operator, OperatorTemplate):
        raise TemplateFormatError(f"'{reference}' is not an operator template", location)
    return operator


def _circuit(library: "Library", header: _Header, body: MarkedDict,
             parent: CircuitTemplate | None) -> CircuitTemplate:
    check_keys(body, {"base", "nodes", "circuits", "edges", "description", "label"}, "a circuit")
    nodes = dict(parent.nodes) if parent else {}
    circuits = dict(parent.circuits) if parent else {}
    edges = list(parent.edges) if parent else []
    for key, found, kind in (("nodes", nodes, NodeTemplate), ("circuits", circuits, CircuitTemplate)):
        raw = body.get(key)
        if raw is None:
            continue
        if not isinstance(raw, MarkedDict):
            raise TemplateFormatError(f"'{key}:' must map labels to {key[:-1]} templates", body.where_value(key))
        found.update((label, _part_ref(library, raw, label, header.file, kind)) for label in raw)
    taken = set(nodes) & set(circuits)
    if taken:
        raise DuplicateDefinitionError(f"'{sorted(taken)[0]}' labels both a node and a circuit", header.location,
                                       "each label names one part of the circuit")
    raw_edges = body.get("edges")
    if raw_edges is not None:
        if not isinstance(raw_edges, MarkedList):
            raise TemplateFormatError("'edges:' must be a list of [source, target, template, {weight: ...}]",
                                      body.where_value("edges"))
        edges += [_edge_row(library, header.file, row, location)
                  for row, location in zip(raw_edges, raw_edges.item_locations)]
    if not nodes and not circuits:
        raise TemplateFormatError(f"circuit '{header.name}' has no nodes", header.location)
    return CircuitTemplate(header.dotted, header.name, nodes, edges, header.description, header.location, circuits)


def _part_ref(library: "Library", raw: MarkedDict, label: str, file: Path,
              kind: type[NodeTemplate] | type[CircuitTemplate]) -> NodeTemplate | CircuitTemplate:
    """The node or circuit template a label of `nodes:` or `circuits:` names."""
    what = "node" if kind is NodeTemplate else "circuit"
    check_name(label, raw.where(label), f"{what} label")
    reference, location = raw[label], raw.where_value(label)
    part = library.get(reference, here=file, location=location) if isinstance(reference, str) else None
    if not isinstance(part, kind):
        raise TemplateFormatError(f"{what} '{label}' must name a {what} template", location)
    return part


def _edge_row(library: "Library", file: Path, row: Any, location: Location) -> EdgeSpec:
    """One row of `edges:` with its edge template (null or one without operators: a plain edge)."""
    if not isinstance(row, list) or len(row) not in (3, 4):
        raise TemplateFormatError("an edge is [source, target, template_or_null, {weight: ..., delay: ...}]",
                                  location)
    template = None
    if row[2] is not None:
        template = library.get(row[2], here=file, location=location) if isinstance(row[2], str) else None
        if not isinstance(template, EdgeTemplate):
            raise TemplateFormatError(f"edge template {excerpt(row[2])} must name an edge template", location)
    return edge(row, location, template if template is not None and template.operators else None)
