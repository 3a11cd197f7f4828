"""The harness runs in the student's kernel: the grader modules it brings there are the ones its docstring names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what grader/execute/kernel_harness.py's docstring says it imports
NAMED = {"grader.execute.cpu_budget", "grader.execute.keras_harness", "grader.execute.trained",
         "grader.execute.compat", "grader.execute.kernel_pip", "grader.data.transforms"}


def _grader_imports(module: str) -> set[str]:
    path = ROOT / Path(*module.split("."))
    source = (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("grader"):
            for alias in node.names:  # `from grader.execute import trained` names the module trained
                child = f"{node.module}.{alias.name}"
                found.add(child if (ROOT / Path(*child.split("."))).exists()
                          or (ROOT / Path(*child.split("."))).with_suffix(".py").exists() else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("grader")}
    return found


def test_the_kernel_harness_imports_only_the_grader_modules_its_docstring_names():
    direct = _grader_imports("grader.execute.kernel_harness")
    assert direct == NAMED
    reached, todo = set(), list(direct)
    while todo:  # and they bring in nothing else of the grader (compat's profiles are its own modules)
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += _grader_imports(module)
    assert {m for m in reached if not m.startswith("grader.execute.compat")} == NAMED - {"grader.execute.compat"}
