"""Model files: YAML with line/column marks, template paths, `base:` inheritance.

This stage turns YAML text into template objects (operators, nodes, circuits) and knows
nothing of equations beyond their text: equation edits (`replace`/`add`/`remove`) are
recorded here and applied by the equations stage on parsed expressions.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import (DuplicateDefinitionError, InheritanceCycleError, InvalidNameError, Location, ModelcError, TemplateFormatError,
                     TextOrigin, UnknownTemplateError, YamlSyntaxError, did_you_mean)
from .resources import resource_dir

KINDS = ("OperatorTemplate", "NodeTemplate", "EdgeTemplate", "CircuitTemplate")
VARIABLE_KINDS = ("output", "input", "variable")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)"
_DECLARATION = re.compile(rf"\s*(output|input|variable)\s*(?:\(\s*({_NUMBER})?\s*\))?\s*\Z")
_NUMBER_TEXT = re.compile(rf"\s*{_NUMBER}\s*\Z")


# --- YAML with marks ------------------------------------------------------------------

class MarkedStr(str):
    """A string from a model file that remembers where each of its characters is."""

    origin: TextOrigin

    def location(self, offset: int = 0, length: int | None = None) -> Location:
        return self.origin.at(offset, len(self) if length is None else length)


class MarkedDict(dict):
    """A mapping from a model file; `where(key)` locates the key, `where_value(key)` its value."""

    location: Location
    key_locations: dict
    value_locations: dict

    def where(self, key) -> Location:
        return self.key_locations.get(key, self.location)

    def where_value(self, key) -> Location:
        return self.value_locations.get(key, self.where(key))


class MarkedList(list):
    location: Location
    item_locations: list


def _node_location(node: yaml.Node, file: str | None, lines: list[str]) -> Location:
    mark = node.start_mark
    source = lines[mark.line] if mark.line < len(lines) else None
    length = node.end_mark.index - mark.index if node.end_mark.line == mark.line else 1
    return Location(file, mark.line + 1, mark.column + 1, source, max(length, 1))


def _scalar_origin(node: yaml.ScalarNode, file: str | None, lines: list[str]) -> TextOrigin:
    """Map each character of a scalar's value back to the file (exact for one-line scalars)."""
    value, mark = node.value, node.start_mark
    if node.style in ("'", '"'):
        first_col = mark.column + 2
    else:
        first_col = mark.column + 1
    if "\n" not in value and node.style not in ("|", ">"):
        return TextOrigin.for_string(value, file, mark.line + 1, first_col, lines)
    # Multi-line scalars: find each value line in the file lines that follow the mark.
    positions: list[tuple[int, int]] = []
    file_line = mark.line + (1 if node.style in ("|", ">") else 0)
    for part in value.split("\n"):
        stripped = part.strip()
        col = 1
        for candidate in range(file_line, min(file_line + 50, len(lines))):
            found = lines[candidate].find(stripped) if stripped else -1
            if found >= 0:
                file_line, col = candidate, found + 1 - (len(part) - len(part.lstrip()))
                break
        positions.extend((file_line + 1, col + i) for i in range(len(part)))
        positions.append((file_line + 1, col + len(part)))  # the newline
        file_line += 1
    return TextOrigin(file, positions[: len(value)], lines)


def _construct(node: yaml.Node, file: str | None, lines: list[str], memo: dict | None = None) -> Any:
    """Build Python values from a composed YAML node, keeping locations.

    A node reached again through an alias is built once and shared (so `*a` repeated many
    times cannot blow up); an alias inside its own anchor is an error.
    """
    memo = {} if memo is None else memo
    if id(node) in memo:
        if memo[id(node)] is _BUILDING:
            raise TemplateFormatError("a YAML alias refers to the node that contains it",
                                      _node_location(node, file, lines))
        return memo[id(node)]
    memo[id(node)] = _BUILDING
    memo[id(node)] = value = _construct_node(node, file, lines, memo)
    return value


_BUILDING = object()


def _construct_node(node: yaml.Node, file: str | None, lines: list[str], memo: dict) -> Any:
    if isinstance(node, yaml.MappingNode):
        result = MarkedDict()
        result.location = _node_location(node, file, lines)
        result.key_locations, result.value_locations = {}, {}
        for key_node, value_node in node.value:
            key = _construct(key_node, file, lines, memo)
            if isinstance(key, (list, dict)):
                raise TemplateFormatError("a mapping key must be a plain name",
                                          _node_location(key_node, file, lines))
            key = str(key) if key is not None else "null"
            if key in result:
                raise TemplateFormatError(f"duplicate key '{key}'", _node_location(key_node, file, lines),
                                          "each key may appear once in a mapping")
            result[key] = _construct(value_node, file, lines, memo)
            result.key_locations[key] = _node_location(key_node, file, lines)
            result.value_locations[key] = _node_location(value_node, file, lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        result = MarkedList(_construct(item, file, lines, memo) for item in node.value)
        result.location = _node_location(node, file, lines)
        result.item_locations = [_node_location(item, file, lines) for item in node.value]
        return result
    value = yaml.SafeLoader.construct_scalar(_SCALAR_LOADER, node)
    tag = node.tag
    if tag == "tag:yaml.org,2002:str" or node.style is not None:
        text = MarkedStr(value)
        text.origin = _scalar_origin(node, file, lines)
        return text
    resolved = _SCALAR_LOADER.construct_object(node, deep=True)
    if isinstance(resolved, str):
        text = MarkedStr(resolved)
        text.origin = _scalar_origin(node, file, lines)
        return text
    return resolved


_SCALAR_LOADER = yaml.SafeLoader("")
_YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def load_yaml(text: str, file: str | None = None) -> MarkedDict:
    """Parse YAML text (safe loader only) into marked values; a file must be a mapping."""
    lines = _YAML_LINE_BREAK.split(text)  # YAML's own line breaks, so marks and lines agree
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is not None and mark.line >= len(lines) - (lines[-1] == "") and exc.context_mark is not None:
            mark = exc.context_mark  # "unexpected end of stream": point at what was left open
        loc = None
        if mark is not None:
            source = lines[mark.line] if mark.line < len(lines) else None
            loc = Location(file, mark.line + 1, mark.column + 1, source)
        problem = exc.problem or "invalid YAML"
        hint = exc.context if exc.context else "check the indentation and the quotes"
        raise YamlSyntaxError(f"YAML syntax error: {problem}", loc, hint) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position)
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise YamlSyntaxError(f"YAML syntax error: character {char!r} is not allowed in a model file",
                              Location(file, line + 1, column, lines[line] if line < len(lines) else None),
                              "model files are UTF-8 text without control characters") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML syntax error: {exc}", Location(file, 1, 1, lines[0] if lines else None)) \
            from None
    except RecursionError:
        raise YamlSyntaxError("YAML structure is nested too deeply", Location(file, 1, 1, lines[0] if lines else None),
                              "flatten the nesting of lists and mappings") from None
    if node is None:
        return _empty_mapping(file)
    try:
        data = _construct(node, file, lines)
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML value error: {exc}", _node_location(node, file, lines)) from None
    except RecursionError:
        raise YamlSyntaxError("YAML structure is nested too deeply", _node_location(node, file, lines),
                              "flatten the nesting of lists and mappings") from None
    if not isinstance(data, MarkedDict):
        raise TemplateFormatError("a model file must be a mapping of template names to templates",
                                  _node_location(node, file, lines))
    return data


def _empty_mapping(file: str | None) -> MarkedDict:
    empty = MarkedDict()
    empty.location = Location(file, 1, 1)
    empty.key_locations, empty.value_locations = {}, {}
    return empty


# --- templates -------------------------------------------------------------------------

@dataclass
class VariableSpec:
    """One entry of an operator's `variables:`."""

    name: str
    kind: str  # "parameter", "output", "input" or "variable"
    default: float
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
    path: str
    name: str
    equations: list[MarkedStr]
    edits: list[EquationEdits]
    variables: dict[str, VariableSpec]
    description: str = ""
    location: Location | None = None


@dataclass
class OperatorUse:
    """An operator inside a node, with the node's value overrides for it."""

    operator: OperatorTemplate
    overrides: dict[str, tuple[float, Location | None]] = field(default_factory=dict)


@dataclass
class NodeTemplate:
    path: str
    name: str
    operators: list[OperatorUse]
    description: str = ""
    location: Location | None = None


@dataclass
class EdgeSpec:
    source: str
    target: str
    weight: float = 1.0
    delay: float | None = None
    location: Location | None = None


@dataclass
class CircuitTemplate:
    path: str
    name: str
    nodes: dict[str, NodeTemplate]
    edges: list[EdgeSpec]
    description: str = ""
    location: Location | None = None


Template = OperatorTemplate | NodeTemplate | CircuitTemplate


def summary(template: Template) -> str:
    """The first line of a template's description (what `modelc list` shows)."""
    text = (template.description or "").strip()
    return text.splitlines()[0].strip() if text else ""


def parse_value(raw: Any, location: Location | None, name: str) -> tuple[str, float]:
    """A variable declaration: a number, or output(x0) / input(x0) / variable(x0)."""
    if isinstance(raw, bool) or raw is None:
        raise TemplateFormatError(f"variable '{name}' needs a number or output(...)/input(...)/variable(...), "
                                  f"got {raw!r}", location)
    kind = value = None
    if isinstance(raw, (int, float)):
        kind, value = "parameter", float(raw)
    elif isinstance(raw, str):
        declared = _DECLARATION.match(raw)
        if declared:
            kind, value = declared.group(1), float(declared.group(2)) if declared.group(2) else 0.0
        elif _NUMBER_TEXT.match(raw):
            kind, value = "parameter", float(raw)
    if kind is not None:
        if not math.isfinite(value):
            raise TemplateFormatError(f"variable '{name}' must have a finite value, got {value!r}", location,
                                      "write an ordinary number (inf and nan are not allowed)")
        return kind, value
    raise TemplateFormatError(f"cannot read the value of variable '{name}': {raw!r}", location,
                              "write a number (10.0), or output(0.0), input(0.0), variable(0.0)")


def check_name(name: str, location: Location | None, what: str = "variable") -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidNameError(f"'{name}' is not a valid {what} name", location,
                               "names start with a letter or '_' and hold letters, digits and '_'")
    if name.startswith("__"):
        raise InvalidNameError(f"{what} name '{name}' may not start with '__'", location)
    return name


_PARSED: dict[tuple[Path, str], MarkedDict] = {}


def _parsed(path: Path, text: str) -> MarkedDict:
    """A file's parsed YAML, shared across libraries while its text is unchanged (the YAML
    composer is pure Python: a network of 100 populations must not parse one file 100 times)."""
    key = (path, text)
    if key not in _PARSED:
        if len(_PARSED) > 256:
            _PARSED.clear()
        _PARSED[key] = load_yaml(text, str(path))
    return _PARSED[key]


class Library:
    """Finds and loads templates by path, caching each file once.

    Search order for a dotted path `a.b.file.template`: explicit files, then the folders of
    MODELC_PATH, then the shipped models/ folder.
    """

    def __init__(self, search_path: list[Path] | None = None):
        if search_path is None:
            extra = [Path(p) for p in os.environ.get("MODELC_PATH", "").split(os.pathsep) if p]
            search_path = extra + [resource_dir("models")]
        self.search_path = [Path(p) for p in search_path]
        self._files: dict[Path, MarkedDict] = {}
        self._templates: dict[tuple[Path, str], Template] = {}
        self._resolving: list[tuple[Path, str]] = []

    # -- files ---------------------------------------------------------------------

    def load_file(self, path: Path) -> MarkedDict:
        path = path.resolve()
        if path not in self._files:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise UnknownTemplateError(f"model file '{path}' does not exist") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise TemplateFormatError(f"cannot read model file '{path}': {exc}") from None
            self._files[path] = _parsed(path, text)
        return self._files[path]

    def templates_in(self, path: Path) -> list[Template]:
        """Every template of a file, in file order."""
        path = path.resolve()
        return [self._template(path, name) for name in self.load_file(path)]

    # -- paths ---------------------------------------------------------------------

    def get(self, reference: str, here: Path | None = None, location: Location | None = None) -> Template:
        """Resolve `file.yaml:template`, a dotted path, or (with `here`) a bare name of that file."""
        if not isinstance(reference, str) or not reference.strip():
            raise UnknownTemplateError(f"a template path must be a non-empty string, got {reference!r}", location)
        reference = reference.strip()
        if ":" in reference and reference.split(":")[0].endswith((".yaml", ".yml")):
            file_part, _, name = reference.rpartition(":")
            file = Path(file_part)
            if not file.is_absolute() and here is not None:
                file = here.parent / file
            return self._template(file.resolve(), name, location)
        if here is not None and "." not in reference:
            return self._template(here, reference, location)
        return self._dotted(reference, location)

    def _dotted(self, reference: str, location: Location | None) -> Template:
        parts = reference.split(".")
        if len(parts) < 2 or not all(_IDENTIFIER.match(p) for p in parts):
            raise UnknownTemplateError(
                f"'{reference}' is not a template path", location,
                "write package.file.template (dotted names only) or path/to/file.yaml:template")
        *folders, file_name, name = parts
        for root in self.search_path:
            for suffix in (".yaml", ".yml"):
                candidate = root.joinpath(*folders, file_name + suffix)
                if candidate.is_file():
                    return self._template(candidate.resolve(), name, location)
        raise UnknownTemplateError(f"no model file for template path '{reference}'", location,
                                   self._path_hint(folders, file_name))

    def _dotted_file(self, path: Path) -> str:
        """The dotted name of a file under a search root (pkg.sub.file), else its stem."""
        for root in self.search_path:
            try:
                return ".".join(path.relative_to(root.resolve()).with_suffix("").parts)
            except ValueError:
                continue
        return path.stem

    def _path_hint(self, folders: list[str], file_name: str) -> str:
        known = []
        for root in self.search_path:
            folder = root.joinpath(*folders)
            if folder.is_dir():
                known += [p.stem for p in folder.iterdir() if p.suffix in (".yaml", ".yml") or p.is_dir()]
        close = did_you_mean(file_name, known)
        searched = ", ".join(str(r) for r in self.search_path)
        return (close + " " if close else "") + f"searched: {searched} (set MODELC_PATH to add folders)"

    # -- templates -----------------------------------------------------------------

    def _template(self, path: Path, name: str, location: Location | None = None) -> Template:
        key = (path, name)
        if key in self._templates:
            return self._templates[key]
        try:
            data = self.load_file(path)
        except (UnknownTemplateError, TemplateFormatError) as exc:
            if exc.location is None and location is not None:
                exc.location = location  # point at the reference that named the missing file
            raise
        if name not in data:
            raise UnknownTemplateError(f"template '{name}' is not in {path.name}", location,
                                       did_you_mean(name, data.keys()) or f"it holds: {', '.join(data)}")
        if key in self._resolving:
            chain = " -> ".join(n for _, n in self._resolving[self._resolving.index(key):]) + f" -> {name}"
            raise InheritanceCycleError(f"templates inherit from each other in a cycle: {chain}",
                                        data.where(name))
        self._resolving.append(key)
        try:
            template = self._build(path, name, data[name], data.where(name))
        finally:
            self._resolving.pop()
        self._templates[key] = template
        return template

    def _build(self, path: Path, name: str, body: Any, location: Location) -> Template:
        check_name(name, location, "template")
        if not isinstance(body, MarkedDict):
            raise TemplateFormatError(f"template '{name}' must be a mapping with a 'base:' key", location)
        base = body.get("base")
        if not isinstance(base, str):
            raise TemplateFormatError(f"template '{name}' needs 'base:' (one of {', '.join(KINDS)} "
                                      "or another template)", body.where("base") if "base" in body else location)
        dotted = f"{self._dotted_file(path)}.{name}"
        description = _text(body, "description", "")
        if base in KINDS:
            parent = None
            kind = base
        else:
            try:
                parent = self.get(base, here=path, location=body.where_value("base"))
            except UnknownTemplateError as exc:
                if "." not in base and exc.hint and "holds" in exc.hint:
                    exc.hint = did_you_mean(base, list(KINDS) + list(self.load_file(path))) or exc.hint
                raise
            kind = type(parent).__name__
            description = description or parent.description
        if kind == "OperatorTemplate":
            return self._operator(dotted, name, body, parent, description, location)
        if kind == "NodeTemplate":
            return self._node(path, dotted, name, body, parent, description, location)
        if kind == "CircuitTemplate":
            return self._circuit(path, dotted, name, body, parent, description, location)
        raise TemplateFormatError(f"'{kind}' templates are not supported yet", body.where_value("base"),
                                  "edge operators will come with delays; use null edges with a weight")

    def _operator(self, dotted, name, body, parent, description, location) -> OperatorTemplate:
        _check_keys(body, {"base", "equations", "variables", "description", "label"}, "an operator")
        equations = list(parent.equations) if parent else []
        edits = list(parent.edits) if parent else []
        raw = body.get("equations")
        if isinstance(raw, MarkedDict):
            if parent is None:
                raise TemplateFormatError("equation edits (replace/add/remove) need a base operator to edit",
                                          body.where("equations"))
            edits.append(_edits(raw))
        elif raw is not None:
            equations, edits = _string_list(raw, body.where_value("equations"), "equations"), []
        elif parent is None:
            raise TemplateFormatError(f"operator '{name}' has no 'equations:'", location)
        variables = dict(parent.variables) if parent else {}
        raw_vars = body.get("variables", None)
        if raw_vars is not None:
            if not isinstance(raw_vars, MarkedDict):
                raise TemplateFormatError("'variables:' must be a mapping of names to values",
                                          body.where_value("variables"))
            for var_name, raw_value in raw_vars.items():
                variables[var_name] = _variable(var_name, raw_value, raw_vars)
        return OperatorTemplate(dotted, name, equations, edits, variables, description, location)

    def _node(self, path, dotted, name, body, parent, description, location) -> NodeTemplate:
        _check_keys(body, {"base", "operators", "description", "label"}, "a node")
        uses = [OperatorUse(u.operator, dict(u.overrides)) for u in parent.operators] if parent else []
        raw = body.get("operators")
        if raw is None and parent is None:
            raise TemplateFormatError(f"node '{name}' has no 'operators:'", location)
        if isinstance(raw, MarkedList):
            uses = [OperatorUse(self._operator_ref(op, path, loc)) for op, loc in zip(raw, raw.item_locations)]
            seen: set[str] = set()
            for use, loc in zip(uses, raw.item_locations):
                if use.operator.name in seen:
                    raise DuplicateDefinitionError(f"operator '{use.operator.name}' appears twice in node '{name}'",
                                                   loc, "each operator may be used once in a node")
                seen.add(use.operator.name)
        elif isinstance(raw, MarkedDict):
            by_name = {u.operator.name: u for u in uses}
            for op_ref, values in raw.items():
                operator = self._operator_ref(op_ref, path, raw.where(op_ref))
                use = by_name.get(operator.name) or OperatorUse(operator)
                use.overrides.update(_overrides(values, raw.where_value(op_ref), operator))
                by_name[operator.name] = use
            uses = list(by_name.values())
        elif raw is not None:
            raise TemplateFormatError("'operators:' must be a list of operator names or a mapping",
                                      body.where_value("operators"))
        return NodeTemplate(dotted, name, uses, description, location)

    def _operator_ref(self, reference: Any, path: Path, location: Location) -> OperatorTemplate:
        operator = self.get(str(reference), here=path, location=location) if isinstance(reference, str) else None
        if not isinstance(operator, OperatorTemplate):
            raise TemplateFormatError(f"'{reference}' is not an operator template", location)
        return operator

    def _circuit(self, path, dotted, name, body, parent, description, location) -> CircuitTemplate:
        _check_keys(body, {"base", "nodes", "edges", "description", "label"}, "a circuit")
        nodes = dict(parent.nodes) if parent else {}
        edges = list(parent.edges) if parent else []
        raw_nodes = body.get("nodes", None)
        if raw_nodes is not None:
            if not isinstance(raw_nodes, MarkedDict):
                raise TemplateFormatError("'nodes:' must map labels to node templates", body.where_value("nodes"))
            for label, ref in raw_nodes.items():
                check_name(label, raw_nodes.where(label), "node label")
                node = self.get(ref, here=path, location=raw_nodes.where_value(label)) \
                    if isinstance(ref, str) else None
                if not isinstance(node, NodeTemplate):
                    raise TemplateFormatError(f"node '{label}' must name a node template", raw_nodes.where_value(label))
                nodes[label] = node
        raw_edges = body.get("edges", None)
        if raw_edges is not None:
            if not isinstance(raw_edges, MarkedList):
                raise TemplateFormatError("'edges:' must be a list of [source, target, template, {weight: ...}]",
                                          body.where_value("edges"))
            edges += [_edge(row, loc) for row, loc in zip(raw_edges, raw_edges.item_locations)]
        if not nodes:
            raise TemplateFormatError(f"circuit '{name}' has no nodes", location)
        return CircuitTemplate(dotted, name, nodes, edges, description, location)



def _text(body: MarkedDict, key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise TemplateFormatError(f"'{key}:' must be text", body.where_value(key))
    return str(value)


def _check_keys(body: MarkedDict, allowed: set[str], what: str) -> None:
    for key in body:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(sorted(allowed))}"
            raise TemplateFormatError(f"unknown key '{key}' in {what}", body.where(key), hint)


def _string_list(raw: Any, location: Location, what: str) -> list[MarkedStr]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, MarkedStr) for i in items):
        raise TemplateFormatError(f"'{what}' must be a string or a list of strings", location,
                                  "quote equations that YAML could read as something else")
    return list(items)


def _edits(raw: MarkedDict) -> EquationEdits:
    edits = EquationEdits(location=raw.location)
    for key, value in raw.items():
        where = raw.where_value(key)
        if key == "replace":
            if not isinstance(value, MarkedDict):
                raise TemplateFormatError("'replace:' must map old expressions to new ones", where)
            for old, new in value.items():
                if new is None or isinstance(new, (bool, list, dict)):
                    raise TemplateFormatError(f"'replace:' needs an expression to put in place of '{old}', "
                                              f"got {new!r}", value.where_value(old))
                if not isinstance(new, str):
                    new = _as_marked(str(new), value.where_value(old))
                if not isinstance(old, MarkedStr):
                    old = _as_marked(str(old), value.where(old))
                edits.replace.append((old, new))
        elif key in ("add", "remove"):
            getattr(edits, key).extend(_string_list(value, where, key))
        else:
            raise TemplateFormatError(f"unknown equation edit '{key}'", raw.where(key),
                                      did_you_mean(key, ["replace", "add", "remove"]) or
                                      "the edits are replace, add and remove")
    return edits


def _as_marked(text: str, location: Location) -> MarkedStr:
    marked = MarkedStr(text)
    marked.origin = TextOrigin.for_string(text, location.file, location.line, location.column,
                                          [location.source_line or text] * location.line)
    return marked


def _variable(name: str, raw: Any, variables: MarkedDict) -> VariableSpec:
    location = variables.where(name)
    check_name(name, location)
    unit = description = None
    value_location = variables.where_value(name)
    if isinstance(raw, MarkedDict):
        unknown = set(raw) - {"default", "unit", "description"}
        if unknown or "default" not in raw:
            raise TemplateFormatError(f"variable '{name}' in long form needs 'default:' "
                                      "(and optionally 'unit:' and 'description:')", value_location)
        unit, description = raw.get("unit"), raw.get("description")
        value_location, raw = raw.where_value("default"), raw["default"]
    kind, default = parse_value(raw, value_location, name)
    return VariableSpec(name, kind, default, location,
                        None if unit is None else str(unit), None if description is None else str(description))


def _overrides(values: Any, location: Location, operator: OperatorTemplate) -> dict:
    if values is None:
        return {}
    if isinstance(values, MarkedDict) and set(values) == {"variables"}:
        values = values["variables"]
    if not isinstance(values, MarkedDict):
        raise TemplateFormatError(f"overrides for '{operator.name}' must map variable names to values", location)
    result = {}
    for var, raw in values.items():
        if var not in operator.variables:
            raise TemplateFormatError(f"operator '{operator.name}' has no variable '{var}'", values.where(var),
                                      did_you_mean(var, operator.variables))
        kind, value = parse_value(raw, values.where_value(var), var)
        result[var] = (value, values.where_value(var))
    return result


def _edge(row: Any, location: Location) -> EdgeSpec:
    if not isinstance(row, list) or len(row) not in (3, 4):
        raise TemplateFormatError("an edge is [source, target, template_or_null, {weight: ..., delay: ...}]",
                                  location)
    source, target, template = row[0], row[1], row[2]
    attrs = row[3] if len(row) == 4 else {}
    if not isinstance(source, str) or not isinstance(target, str):
        raise TemplateFormatError("edge source and target must be paths node/op/var", location)
    if template is not None:
        raise TemplateFormatError("edge templates are not supported yet; use null and a weight", location)
    if attrs is None:
        attrs = {}
    if not isinstance(attrs, dict):
        raise TemplateFormatError("edge attributes must be a mapping like {weight: 1.0}", location)
    unknown = set(attrs) - {"weight", "delay"}
    if unknown:
        raise TemplateFormatError(f"unknown edge attribute '{sorted(unknown)[0]}'", location,
                                  "edges take weight and delay")
    weight = attrs.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise TemplateFormatError(f"edge weight must be a finite number, got {weight!r}", location)
    delay = attrs.get("delay")
    if delay not in (None, 0, 0.0):
        raise TemplateFormatError("edge delays are not supported yet", location)
    return EdgeSpec(str(source), str(target), float(weight), None, location)


def load(reference: "str | Template", library: Library | None = None) -> Template:
    """A template from a path (or a template object, returned as is)."""
    if isinstance(reference, (OperatorTemplate, NodeTemplate, CircuitTemplate)):
        return reference
    try:
        return (library or Library()).get(reference)
    except RecursionError:
        raise ModelcError("templates nest too deeply") from None
