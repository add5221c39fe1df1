"""The runtime: the module cache, compile_model, and (on top) Network and Observer."""
