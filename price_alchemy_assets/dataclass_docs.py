"""The docstrings under a dataclass's fields: one description per knob, shown by the launchpad
(defs/run_config.py) and the configuration table (settings.py) alike."""

import ast
import inspect
import textwrap
from functools import cache


@cache
def attribute_docs(source: type) -> dict[str, str]:
    """The string after each `name: type = default` of a dataclass, by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(source)))
    body = tree.body[0].body
    docs = {}
    for field, after in zip(body, body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[field.target.id] = inspect.cleandoc(after.value.value)
    return docs
