"""The runtime: the module cache, compile_model/compile_source, and (on top) Network and Observer."""
