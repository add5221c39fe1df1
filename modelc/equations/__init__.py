"""The equations stage: equation text -> SymPy, through the lark grammar in modelc/grammar.lark.

    parse_equation("v' = -v/tau + I")  ->  Equation(kind="ode", target="v", rhs=I - v/tau, ...)

Text is never evaluated: the grammar knows only numbers, names, operators, parentheses
and calls, calls are checked against a closed whitelist, and a lark Transformer builds the
SymPy objects directly. Every error points at the offending characters via a TextOrigin.

    functions     the whitelist of functions, the constants, time, symbols
    expressions   parse tree -> SymPy (the right-hand side), with where each name is used
    parser        text -> Equation (the grammar, syntax errors, the left-hand side)
    printer       SymPy -> text in the same syntax (edited equations show what runs)
    edits         an operator's equations after its inheritance edits (replace/remove/add)
"""
from .edits import operator_equations, parse_all, raise_all
from .expressions import Span
from .functions import FUNCTION_NAMES, TIME, Exprel, PopMean, PopSum, free_names, symbol
from .parser import Equation, parse_equation, parse_expression
from .printer import equation_text, expression_text

__all__ = ["symbol", "TIME", "Span", "Equation", "parse_equation", "parse_expression", "FUNCTION_NAMES", "PopMean",
           "PopSum", "Exprel", "free_names", "equation_text", "expression_text", "operator_equations", "parse_all",
           "raise_all"]
