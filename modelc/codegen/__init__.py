"""Code generation: a checked System -> the source text of one Python module.

plan.py sorts the work into what runs once, per chunk and per step; schemes.py holds the
integration schemes; step.py turns a plan and a scheme into the statements of one step, and
adjoint.py into the statements of its reverse sweep (for gradients). Each backend (numpy/,
cupy/) only translates those statements with its printer (printers.py, c_printer.py) into the
variables of its templates (templates/<backend>/); naming.py hands out identifiers, layout.py
writes what every module says alike. generate.py ties them together; options.py lists the
choices (methods, backends, dtypes) without importing anything heavy.
"""
