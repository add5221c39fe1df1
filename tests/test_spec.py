"""Tests of the spec stage (modelc/spec/): YAML with marks, the search path, template building
and inheritance. Errors of bad files are in tests/error_cases.py; escapes from the search
root in tests/test_safety.py.
"""
from __future__ import annotations

import inspect
import os
import sys
import textwrap
from pathlib import Path

import pytest

from modelc.errors import ModelFileError, YamlSyntaxError
from modelc.resources import resource_dir
from modelc.spec import (CircuitTemplate, EdgeSpec, Library, MarkedDict, MarkedStr, NodeTemplate, OperatorTemplate,
                         default_search_path, load, load_yaml, parse_value, summary)
from modelc.spec.marked_yaml import MAX_DEPTH as MAX_YAML_DEPTH
from modelc.spec.marked_yaml import excerpt

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"


def _write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# --- YAML with marks ------------------------------------------------------------------------

def test_keys_and_values_know_their_line_and_column():
    data = load_yaml("m:\n  base: OperatorTemplate\n  variables: {tau: 10.0}\n", "f.yaml")
    body = data["m"]
    assert isinstance(body, MarkedDict)
    assert (body.where("base").line, body.where("base").column) == (2, 3)
    assert (body.where_value("base").line, body.where_value("base").column) == (2, 9)
    assert body.where_value("base").source_line == "  base: OperatorTemplate"
    tau = body["variables"].where_value("tau")
    assert (tau.file, tau.line, tau.column) == ("f.yaml", 3, 20)
    assert body.where("missing") == body.location  # an absent key: the mapping itself


@pytest.mark.parametrize("scalar, column", [('"x\' = -x"', 15), ("'x'' = -x'", 15), ("x' = -x", 14)])
def test_each_character_of_a_one_line_string_maps_to_its_column(scalar, column):
    text = load_yaml(f"m:\n  equations: {scalar}\n")["m"]["equations"]
    assert isinstance(text, MarkedStr) and text == "x' = -x"
    where = text.location(5, 2)  # the "-x"
    assert (where.line, where.column, where.length) == (2, column + 5, 2)


def test_block_scalars_map_each_line_back_to_the_file():
    text = load_yaml("m:\n  equations: |\n    x' = -x +\n      exp(x)\n")["m"]["equations"]
    where = text.location(text.index("exp"))
    assert (where.line, where.column) == (4, 7)


def test_an_empty_string_keeps_the_place_of_its_quotes():
    text = load_yaml('m:\n  equations: ""\n')["m"]["equations"]
    assert text == "" and (text.location().line, text.location().column) == (2, 14)


def test_plain_scalars_are_numbers_booleans_and_null_strings_stay_marked():
    values = load_yaml("m: {a: 1, b: 2.5e-3, c: true, d: null, e: '1', f: output(0.0)}\n")["m"]
    assert values == {"a": 1, "b": 0.0025, "c": True, "d": None, "e": "1", "f": "output(0.0)"}
    assert isinstance(values["e"], MarkedStr) and isinstance(values["f"], MarkedStr)


def test_an_alias_is_built_once_and_shared():
    data = load_yaml("a: &shared [1, 2]\nb: *shared\nc: *shared\n")
    assert data["b"] is data["a"] and data["c"] is data["a"]


def test_an_alias_is_located_where_it_is_written_not_at_its_anchor():
    data = load_yaml("a: &big [1, 2]\nm:\n  tau: *big\n  list: [0, *big]\n")
    assert (data["m"].where_value("tau").line, data["m"].where_value("tau").column) == (3, 8)
    assert [(w.line, w.column) for w in data["m"]["list"].item_locations] == [(4, 10), (4, 13)]


def test_values_in_messages_are_excerpts_that_never_walk_a_whole_value():
    laughs = ["lol"] * 10
    for _ in range(30):  # 10^31 strings, shared
        laughs = [laughs] * 10
    assert excerpt(laughs, 20) == "[[[[[[[[[[[[[[[[[[[[…"
    assert excerpt({"a": [1.5, None]}) == "{'a': [1.5, None]}"
    assert excerpt("x" * 10**6) == "'" + "x" * 59 + "…"


def test_nesting_up_to_the_limit_loads_and_one_level_more_is_an_error():
    deep = "m: " + "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1) + "\n"  # the file mapping is one level
    assert load_yaml(deep)["m"] == _nested_empty(MAX_YAML_DEPTH - 2)
    with pytest.raises(YamlSyntaxError, match=f"more than {MAX_YAML_DEPTH} levels"):
        load_yaml("m: " + "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH + "\n")


def _nested_empty(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def test_an_empty_file_is_an_empty_mapping():
    assert load_yaml("", "empty.yaml") == {} and load_yaml("# only a comment\n") == {}


# --- variable values ------------------------------------------------------------------------

@pytest.mark.parametrize("raw, parsed", [
    (10, ("parameter", 10.0)), (2.5, ("parameter", 2.5)), ("1e-3", ("parameter", 0.001)),
    ("output(1.5)", ("output", 1.5)), ("input()", ("input", 0.0)), ("variable", ("variable", 0.0)),
    (" input( -2 ) ", ("input", -2.0)), ("output(.5e1)", ("output", 5.0)),
])
def test_variable_values(raw, parsed):
    assert parse_value(raw, None, "x") == parsed


# --- the search path ------------------------------------------------------------------------

def test_modelc_path_comes_before_the_shipped_models(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("MODELC_PATH", f"{first}{os.pathsep}{second}")
    assert default_search_path() == [first, second, resource_dir("models")]
    monkeypatch.delenv("MODELC_PATH")
    assert default_search_path() == [resource_dir("models")]


def test_a_dotted_path_is_folders_file_template_and_the_first_root_wins(tmp_path):
    body = """
        m:
          base: OperatorTemplate
          description: {where}
          equations: "x' = -x"
          variables: {{x: output(0.0)}}
        """
    _write(tmp_path / "a", "pkg/sub/file.yaml", body.format(where="root a"))
    _write(tmp_path / "b", "pkg/sub/file.yml", body.format(where="root b"))
    _write(tmp_path / "b", "other.yml", body.format(where="yml in b"))
    library = Library([tmp_path / "a", tmp_path / "b"])
    template = library.get("pkg.sub.file.m")
    assert template.description == "root a" and template.path == "pkg.sub.file.m"
    assert library.get("other.m").description == "yml in b"


def test_the_shipped_models_are_found_without_modelc_path(monkeypatch):
    monkeypatch.delenv("MODELC_PATH", raising=False)
    node = load(SEED)
    assert isinstance(node, NodeTemplate) and node.path == SEED
    assert [use.operator.name for use in node.operators] == ["li_op", "tanh_op"]


def test_explicit_files_and_names_inside_a_file(tmp_path):
    _write(tmp_path, "ops.yaml", """
        li:
          base: OperatorTemplate
          equations: "v' = -v + u"
          variables: {v: output(0.0), u: input(0.0)}
        """)
    path = _write(tmp_path, "nodes/n.yaml", """
        n:
          base: NodeTemplate
          operators: [../ops.yaml:li, local]
        local:
          base: OperatorTemplate
          equations: "y = 2*v"
          variables: {y: output(0.0), v: input(0.0)}
        """)
    node = Library([]).get(f"{path}:n")
    assert [use.operator.path for use in node.operators] == ["ops.li", "n.local"]  # outside the roots: the stem


def test_scan_lists_every_template_and_skips_what_cannot_be_read(tmp_path):
    _write(tmp_path, "pkg/good.yaml", """
        o:
          base: OperatorTemplate
          equations: "x' = -x"
          variables: {x: output(0.0)}
        broken:
          base: nowhere
        """)
    (tmp_path / "pkg" / "latin1.yaml").write_bytes(b"o: {base: OperatorTemplate, description: caf\xe9}\n")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.yaml")  # read, it would block forever
    found = Library([tmp_path]).scan()
    assert [dotted for dotted, _ in found.templates] == ["pkg.good.o"]
    skipped = {(type(e).__name__, Path(e.location.file).name if e.location else e.message) for e in found.skipped}
    assert ("UnknownTemplateError", "good.yaml") in skipped and ("ModelFileError", "latin1.yaml") in skipped
    if hasattr(os, "mkfifo"):
        assert ("ModelFileError", f"model file '{tmp_path / 'pipe.yaml'}' is a named pipe, not a regular file") \
            in skipped


@pytest.mark.parametrize("base_first", [True, False])
def test_a_long_chain_of_bases_builds_without_deep_recursion(tmp_path, base_first):
    """Each template's bases are built first, the root first: however long the chain and in
    whatever order the file lists it, building one template recurses into its base only."""
    bodies = ["a0: {base: OperatorTemplate, equations: \"x' = -x\", variables: {x: output(0.0)}}\n"]
    bodies += [f"a{i}: {{base: a{i - 1}, variables: {{k{i}: {i}.0}}}}\n" for i in range(1, 2000)]
    path = tmp_path / "chain.yaml"
    path.write_text("".join(bodies if base_first else reversed(bodies)), encoding="utf-8")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200 + len(inspect.stack()))  # far below 2000 templates of recursion
    try:
        top = Library([]).get(f"{path}:a1999")
    finally:
        sys.setrecursionlimit(limit)
    assert top.equations == ["x' = -x"] and len(top.variables) == 2000


def test_a_model_file_of_the_size_limit_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr("modelc.spec.library.MAX_FILE_BYTES", 64)
    path = tmp_path / "m.yaml"
    path.write_text("m: {base: OperatorTemplate, equations: \"x' = -x\"}".ljust(63) + "\n")  # 64 bytes
    assert list(Library([]).load_file(path)) == ["m"]
    path.write_text(path.read_text() + "\n")
    with pytest.raises(ModelFileError, match="larger than"):
        Library([]).load_file(path)


def test_each_file_is_read_once_and_each_template_built_once(tmp_path):
    path = _write(tmp_path, "m.yaml", """
        a:
          base: OperatorTemplate
          equations: "x' = -x"
          variables: {x: output(0.0)}
        b:
          base: NodeTemplate
          operators: [a]
        """)
    library = Library([tmp_path])
    assert library.load_file(path) is library.load_file(path)
    assert library.get("m.a") is library.get("m.b").operators[0].operator
    assert [t.name for t in library.templates_in(path)] == ["a", "b"]


# --- inheritance ----------------------------------------------------------------------------

FAMILY = """
    base_op:
      base: OperatorTemplate
      description: |
        A leaky unit.
        More words.
      equations: ["v' = -v/tau + eta", "r = tanh(v)"]
      variables:
        v: output(0.0)
        r: variable(0.0)
        tau: {default: 10.0, unit: ms, description: time constant}
        eta: 0.0
    edited:
      base: base_op
      equations: {replace: {eta: eta - a}}
      variables: {a: 1.0, tau: 5.0}
    edited_again:
      base: edited
      equations: {add: ["w' = -w"], remove: [r]}
      variables: {w: variable(1.0)}
    rewritten:
      base: edited
      description: Rewritten.
      equations: "v' = -v"
    node:
      base: NodeTemplate
      operators: {base_op: {tau: 20.0}}
    child_node:
      base: node
      operators: {base_op: {eta: 1.0}, edited: null}
    circuit:
      base: CircuitTemplate
      nodes: {a: node}
      edges: [[a/base_op/v, a/base_op/eta, null, {weight: 2.0}]]
    bigger_circuit:
      base: circuit
      nodes: {b: child_node}
      edges: [[a/base_op/r, b/base_op/eta, null]]
    """


@pytest.fixture
def family(tmp_path):
    _write(tmp_path, "family.yaml", FAMILY)
    return Library([tmp_path])


def test_a_child_operator_keeps_its_parents_variables_and_changes_what_it_says(family):
    parent, child = family.get("family.base_op"), family.get("family.edited")
    assert isinstance(child, OperatorTemplate) and child.path == "family.edited"
    assert list(child.variables) == ["v", "r", "tau", "eta", "a"]
    tau = child.variables["tau"]
    assert (tau.kind, tau.default, tau.unit) == ("parameter", 5.0, None)  # redeclared: the long form is not merged
    assert parent.variables["tau"].default == 10.0 and parent.variables["tau"].unit == "ms"
    assert child.description == parent.description and summary(child) == "A leaky unit."


def test_equation_edits_are_recorded_oldest_first_and_equations_stay_text(family):
    child = family.get("family.edited_again")
    assert child.equations == ["v' = -v/tau + eta", "r = tanh(v)"]
    assert [(e.replace, e.add, e.remove) for e in child.edits] == [
        ([("eta", "eta - a")], [], []), ([], ["w' = -w"], ["r"])]
    old, new = child.edits[0].replace[0]
    for text in (old, new):  # each points at itself in the file
        where = text.location()
        assert where.source_line == "  equations: {replace: {eta: eta - a}}"
        assert where.source_line[where.column - 1:].startswith(text)
    assert new.location().column == 30


def test_new_equations_replace_every_inherited_equation_and_edit(family):
    rewritten = family.get("family.rewritten")
    assert rewritten.equations == ["v' = -v"] and rewritten.edits == []
    assert rewritten.description == "Rewritten." and "a" in rewritten.variables


def test_a_node_map_overrides_values_and_a_child_node_adds_operators(family):
    node, child = family.get("family.node"), family.get("family.child_node")
    assert [(u.operator.name, {k: v for k, (v, _) in u.overrides.items()}) for u in node.operators] == \
        [("base_op", {"tau": 20.0})]
    assert [(u.operator.name, {k: v for k, (v, _) in u.overrides.items()}) for u in child.operators] == \
        [("base_op", {"tau": 20.0, "eta": 1.0}), ("edited", {})]
    assert node.operators[0].overrides == {"tau": (20.0, node.operators[0].overrides["tau"][1])}  # parent unchanged


def test_a_child_circuit_adds_nodes_and_edges(family):
    parent, child = family.get("family.circuit"), family.get("family.bigger_circuit")
    assert isinstance(child, CircuitTemplate) and list(child.nodes) == ["a", "b"]
    assert [(e.source, e.target, e.weight) for e in child.edges] == [
        ("a/base_op/v", "a/base_op/eta", 2.0), ("a/base_op/r", "b/base_op/eta", 1.0)]
    assert list(parent.nodes) == ["a"] and len(parent.edges) == 1
    assert isinstance(child.edges[0], EdgeSpec)
    assert child.edges[0].location.source_line == "  edges: [[a/base_op/v, a/base_op/eta, null, {weight: 2.0}]]"


def test_load_returns_a_template_object_as_it_is(family):
    template = family.get("family.node")
    assert load(template) is template
