"""Sweeps in chunks: a sweep's parameter sets split into chunks, each chunk one batched run of
the generated module, in this process or on the workers of a Dask cluster, the results
gathered into an xarray.Dataset or streamed into a Zarr store (resumable).

The work travels as the module's content hash and source text plus arrays (chunks.SweepJob):
a worker loads the module from the text (its cache keeps it) and needs NumPy and modelc's
runtime only, never SymPy, lark or the model files. Dask, xarray and zarr are the optional
extra `modelc[distributed]`; importing this package imports none of them.
"""
