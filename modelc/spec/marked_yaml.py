"""YAML with marks: every string, mapping and list of a model file knows where it sits.

Only PyYAML's safe composer runs; values are built here from the composed nodes so that
each one keeps its line and column (errors point into the file, equations map each of
their characters back to it).
"""
from __future__ import annotations

import re
from itertools import islice
from typing import Any, Iterator

import yaml

from ..errors import Location, TemplateFormatError, TextOrigin, YamlSyntaxError

MAX_DEPTH = 32  # lists and mappings inside each other; a model file needs six


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

    @classmethod
    def empty(cls, location: Location) -> "MarkedDict":
        mapping = cls()
        mapping.location, mapping.key_locations, mapping.value_locations = location, {}, {}
        return mapping

    def where(self, key) -> Location:
        return self.key_locations.get(key, self.location)

    def where_value(self, key) -> Location:
        return self.value_locations.get(key, self.where(key))


class MarkedList(list):
    location: Location
    item_locations: list


def marked_text(text: str, location: Location) -> MarkedStr:
    """Text that stands at `location` on one line (e.g. a number YAML read as a float)."""
    marked = MarkedStr(text)
    marked.origin = TextOrigin.for_string(text, location.file, location.line, location.column,
                                          [location.source_line or text] * location.line)
    return marked


def excerpt(value: Any, limit: int = 60) -> str:
    """The repr of a YAML value, cut at `limit` characters. Only what is shown is visited: a few
    lines of YAML aliases stand for billions of items (each alias shares its anchor's value)."""
    text = "".join(islice(_repr_pieces(value), limit + 1))
    return text if len(text) <= limit else text[:limit] + "…"


def _repr_pieces(value: Any) -> Iterator[str]:
    """repr(value), lazily, a character at a time: nesting reaches only as deep as what is read."""
    if isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield from (", " if i else "") + repr(key) + ": "
            yield from _repr_pieces(item)
        yield "}"
    elif isinstance(value, list):
        yield "["
        for i, item in enumerate(value):
            yield from ", " if i else ""
            yield from _repr_pieces(item)
        yield "]"
    else:
        yield from repr(value)


def node_location(node: yaml.Node, file: str | None, lines: list[str]) -> Location:
    mark = node.start_mark
    source = lines[mark.line] if mark.line < len(lines) else None
    length = node.end_mark.index - mark.index if node.end_mark.line == mark.line else 1
    return Location(file, mark.line + 1, mark.column + 1, source, max(length, 1))


def _scalar_origin(node: yaml.ScalarNode, file: str | None, lines: list[str]) -> TextOrigin:
    """Map each character of a scalar's value back to the file (exact for one-line scalars)."""
    value, mark = node.value, node.start_mark
    if not value:  # no characters to map: keep the scalar's own place (its quote) for errors
        return TextOrigin(file, [(mark.line + 1, mark.column + 1)], lines)
    first_col = mark.column + (2 if node.style in ("'", '"') else 1)
    if "\n" not in value and node.style not in ("|", ">"):
        return TextOrigin.for_string(value, file, mark.line + 1, first_col, lines)
    return TextOrigin(file, _multi_line_positions(value, mark, node.style, lines), lines)


def _multi_line_positions(value: str, mark, style: str | None, lines: list[str]) -> list[tuple[int, int]]:
    """(line, column) of each character of a multi-line scalar: each value line is looked up
    in the file lines that follow the mark (folding and indentation change the text)."""
    positions: list[tuple[int, int]] = []
    file_line = mark.line + (1 if style in ("|", ">") else 0)
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
    return positions[: len(value)]


class _Constructor:
    """Builds Python values from composed YAML nodes, keeping locations.

    A node reached again through an alias is built once and shared (so `*a` repeated many
    times cannot blow up); an alias inside its own anchor is an error.
    """

    _BUILDING = object()

    def __init__(self, file: str | None, lines: list[str], aliases: dict[tuple[int, Any], yaml.Event]):
        self.file, self.lines, self.aliases = file, lines, aliases
        self.built: dict[int, Any] = {}
        # Resolves plain scalars (numbers, booleans, null) safely; one per file, as it keeps
        # every node it has built.
        self.scalars = yaml.SafeLoader("")

    def at(self, node: yaml.Node) -> Location:
        return node_location(node, self.file, self.lines)

    def at_use(self, parent: yaml.Node, place: Any, node: yaml.Node) -> Location:
        """Where a value is written: its alias (`*a`) if it is one, not the anchor it shares."""
        alias = self.aliases.get((id(parent), place))
        if alias is None:
            return self.at(node)
        return _mark_location(alias.start_mark, self.file, self.lines, alias.end_mark.index - alias.start_mark.index)

    def value(self, node: yaml.Node) -> Any:
        if id(node) in self.built:
            if self.built[id(node)] is self._BUILDING:
                raise TemplateFormatError("a YAML alias refers to the node that contains it", self.at(node))
            return self.built[id(node)]
        self.built[id(node)] = self._BUILDING
        if isinstance(node, yaml.MappingNode):
            value = self.mapping(node)
        elif isinstance(node, yaml.SequenceNode):
            value = self.sequence(node)
        else:
            value = self.scalar(node)
        self.built[id(node)] = value
        return value

    def mapping(self, node: yaml.MappingNode) -> MarkedDict:
        result = MarkedDict.empty(self.at(node))
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if isinstance(key, (list, dict)):
                raise TemplateFormatError("a mapping key must be a plain name", self.at(key_node))
            key = str(key) if key is not None else "null"
            if key in result:
                raise TemplateFormatError(f"duplicate key '{key}'", self.at(key_node),
                                          "each key may appear once in a mapping")
            result[key] = self.value(value_node)
            result.key_locations[key] = self.at(key_node)
            result.value_locations[key] = self.at_use(node, id(key_node), value_node)
        return result

    def sequence(self, node: yaml.SequenceNode) -> MarkedList:
        result = MarkedList(self.value(item) for item in node.value)
        result.location = self.at(node)
        result.item_locations = [self.at_use(node, i, item) for i, item in enumerate(node.value)]
        return result

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == "tag:yaml.org,2002:str" or node.style is not None:
            value = self.scalars.construct_scalar(node)
        else:
            value = self._plain(node)
            if not isinstance(value, str):
                return value
        text = MarkedStr(value)
        text.origin = _scalar_origin(node, self.file, self.lines)
        return text

    def _plain(self, node: yaml.ScalarNode) -> Any:
        """A plain scalar as YAML reads it: a number, a boolean, null, a date, or text."""
        try:
            return self.scalars.construct_object(node, deep=True)
        except ValueError as exc:
            if node.tag == "tag:yaml.org,2002:int":  # Python reads at most 4300 digits
                raise TemplateFormatError(f"number with {len(node.value)} digits is too large", self.at(node),
                                          "a model's numbers must be finite float64 values (at most about 1.8e308)") \
                    from None
            raise TemplateFormatError(f"cannot read the YAML value {excerpt(node.value)}: {exc}", self.at(node)) \
                from None


_YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark):
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing lists and mappings nested more than MAX_DEPTH deep before its
    composer recurses into them (values nest deeper only through aliases, which are shared),
    and noting where each alias is written."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.aliases: dict[tuple[int, Any], yaml.Event] = {}  # (parent node, key node id or index) -> alias

    def compose_node(self, parent, index):
        if self.depth >= MAX_DEPTH:
            raise _TooDeep(self.peek_event().start_mark)
        if parent is not None and index is not None and self.check_event(yaml.AliasEvent):
            self.aliases[(id(parent), id(index) if isinstance(index, yaml.Node) else index)] = self.peek_event()
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(text: str, file: str | None = None) -> MarkedDict:
    """Parse YAML text (safe loader only) into marked values; a file must be a mapping."""
    lines = _YAML_LINE_BREAK.split(text)  # YAML's own line breaks, so marks and lines agree
    node, aliases = _compose(text, file, lines)
    if node is None:
        return MarkedDict.empty(Location(file, 1, 1))
    where = node_location(node, file, lines)
    try:
        data = _Constructor(file, lines, aliases).value(node)
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML value error: {exc}", where) from None
    if not isinstance(data, MarkedDict):
        raise TemplateFormatError("a model file must be a mapping of template names to templates", where)
    return data


def _compose(text: str, file: str | None, lines: list[str]) -> tuple[yaml.Node | None, dict]:
    """The YAML node tree of a file and where its aliases are; PyYAML's complaints become
    located YamlSyntaxErrors."""
    first_line = Location(file, 1, 1, lines[0] if lines else None)
    try:
        loader = _Loader(text)
        try:
            return loader.get_single_node(), loader.aliases
        finally:
            loader.dispose()
    except _TooDeep as exc:
        raise YamlSyntaxError(f"YAML structure is nested too deeply (more than {MAX_DEPTH} levels)",
                              _mark_location(exc.mark, file, lines), "flatten the nesting of lists and mappings") \
            from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file, lines) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position)
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise YamlSyntaxError(f"YAML syntax error: character {char!r} is not allowed in a model file",
                              Location(file, line + 1, column, lines[line] if line < len(lines) else None),
                              "model files are UTF-8 text without control characters") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML syntax error: {exc}", first_line) from None


def _syntax_error(exc: yaml.MarkedYAMLError, file: str | None, lines: list[str]) -> YamlSyntaxError:
    mark = exc.problem_mark or exc.context_mark
    at_end = mark is not None and mark.line >= len(lines) - (lines[-1] == "")
    if at_end and exc.context_mark is not None:
        mark = exc.context_mark  # "unexpected end of stream": point at what was left open
    location = None if mark is None else _mark_location(mark, file, lines)
    hint = exc.context if exc.context else "check the indentation and the quotes"
    return YamlSyntaxError(f"YAML syntax error: {exc.problem or 'invalid YAML'}", location, hint)


def _mark_location(mark: yaml.Mark, file: str | None, lines: list[str], length: int = 1) -> Location:
    source = lines[mark.line] if mark.line < len(lines) else None
    return Location(file, mark.line + 1, mark.column + 1, source, max(length, 1))
