"""Readable, unique identifiers for everything a generated module names.

One Namer hands out every identifier of a generated function: model variables, the values of
the step program (stage values, rates, buffers) and the names the backend derives from them
(record arrays, input windows). So no two can collide, and none can take a name its templates
declare (templating.declared_names). Identifiers are ASCII-safe after Python's NFKC folding of
identifiers, and never start with '_' (the generated module's own helpers all do).
"""
from __future__ import annotations

import builtins
import collections
import functools
import keyword
import unicodedata
from typing import Iterable


class Namer:
    def __init__(self, qualified_names: Iterable[str], taken: Iterable[str]):
        self.taken = set(taken)
        self.names: dict[str, str] = {}
        qualified = list(qualified_names)

        @functools.cache
        def tails(k: int) -> collections.Counter:  # how many names end in each k-part tail
            return collections.Counter("_".join(n.split("/")[-k:]) for n in qualified)
        for name in qualified:
            self.names[name] = self.fresh(self._readable(name, tails))

    @staticmethod
    def _readable(name: str, tails) -> str:
        """The shortest tail of the path (var, op_var, node_op_var) that no other name ends in."""
        parts = name.split("/")
        for k in range(1, len(parts) + 1):
            candidate = "_".join(parts[-k:])
            if tails(k)[candidate] == 1:
                return candidate
        return "_".join(parts)

    def fresh(self, base: str) -> str:
        """A new identifier as close to base as possible."""
        candidate = self.legal(base)
        while not self.free(candidate):
            candidate += "_"
        self.taken.add(candidate)
        return candidate

    @staticmethod
    def legal(base: str) -> str:
        """base as an identifier Python reads back unchanged (NFKC), not starting with '_'."""
        base = unicodedata.normalize("NFKC", base)
        if not base.isidentifier() or not base.isascii():
            base = "v_" + "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in base)
        return "v" + base if base.startswith("_") else base

    def free(self, candidate: str) -> bool:
        return not (candidate in self.taken or keyword.iskeyword(candidate) or hasattr(builtins, candidate))
