"""modelc's version, in a module that imports nothing, so every layer can read it.

It goes into each generated module's header and into every cache key; pyproject.toml reads
it from here for the package metadata.
"""
__version__ = "0.1.0"
