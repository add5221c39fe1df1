"""The Jinja environment every backend renders its templates with, and what templates declare."""
from __future__ import annotations

import functools
import json
import pprint
import re

import jinja2

from ..resources import resource_dir


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=False, lstrip_blocks=False, autoescape=False)
    env.filters["pyrepr"] = lambda value: pprint.pformat(value, width=100, sort_dicts=False)
    env.filters["literal"] = literal
    env.filters["tojson"] = json.dumps
    return env


def literal(value) -> str:
    """A Python literal that reads back exactly, strings in double quotes. (json.dumps spells a
    character beyond U+FFFF as two surrogate escapes: a different string in Python.)"""
    text = repr(value)
    if isinstance(value, str) and text.startswith("'") and '"' not in value:
        return '"' + text[1:-1] + '"'
    return text


_DECLARATION = re.compile(r"\{#-?\s*(binds|needs):(.*?)-?#\}", re.S)
_COMMENT = re.compile(r"\s*\{#.*?#\}", re.S)


@functools.lru_cache(maxsize=None)
def declared_names(template: str) -> frozenset[str]:
    """The names a template declares in its header: those it `binds` inside functions that also
    hold model identifiers, and the module-level names it `needs` there (as Brian2's templates
    declare theirs). A model identifier never takes one of them. Only the header is read: the
    comments before the template's first line of text."""
    text = (resource_dir("templates") / template).read_text(encoding="utf-8")
    names: set[str] = set()
    for match in _DECLARATION.finditer(text[:_header_end(text)]):
        names.update(match.group(2).split())
    return frozenset(names)


def _header_end(text: str) -> int:
    position = 0
    while (match := _COMMENT.match(text, position)):
        position = match.end()
    return position
