"""Model files: YAML with line/column marks, template paths, `base:` inheritance.

This stage turns YAML text into template objects (operators, nodes, circuits) and knows
nothing of equations beyond their text: equation edits (`replace`/`add`/`remove`) are
recorded here and applied by the IR stage on parsed expressions.

    marked_yaml   YAML -> values that know their line and column
    templates     the template classes
    validation    reading one field of a template body (names, values, variables, edges, edits)
    inheritance   a template from its body and its parent (`base:`)
    library       the search path (MODELC_PATH, then models/), dotted paths, one load per file
"""
from .library import Library, default_search_path, load
from .marked_yaml import MarkedDict, MarkedList, MarkedStr, load_yaml
from .templates import (KINDS, CircuitTemplate, EdgeSpec, EdgeTemplate, EquationEdits, NodeTemplate, OperatorTemplate,
                        OperatorUse, Template, VariableSpec, summary)
from .validation import check_name, parse_value

__all__ = ["Library", "default_search_path", "load", "MarkedDict", "MarkedList", "MarkedStr", "load_yaml", "KINDS",
           "CircuitTemplate", "EdgeSpec", "EdgeTemplate", "EquationEdits", "NodeTemplate", "OperatorTemplate",
           "OperatorUse", "Template", "VariableSpec", "summary", "check_name", "parse_value"]
