"""The Jinja environment every backend renders its templates with."""
from __future__ import annotations

import functools
import json
import pprint

import jinja2

from ..resources import resource_dir


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=False, lstrip_blocks=False, autoescape=False)
    env.filters["pyrepr"] = lambda value: pprint.pformat(value, width=100, sort_dicts=False)
    env.filters["tojson"] = json.dumps
    return env
