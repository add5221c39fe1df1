"""modelc's version, in a module that imports nothing, so every layer can read it.

It goes into each generated module's header and into every cache key. pyproject.toml states
the same number for the package metadata.
"""
__version__ = "0.1.0"
