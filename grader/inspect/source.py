"""What code cells hold besides Python, and what their Python imports and calls.

IPython lines (`!shell`, `%magic`, a `%%cell magic` head) are split off first
so that the rest parses as Python; `ast` then reads the imports, the Colab
calls and the roots passed to `datasets.MNIST(...)`, with regexes for cells
that still do not parse. Nothing is executed or imported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

from grader import pysyntax

# Cell magics whose body is shell, or another language; every other body is Python
# (`%%time`, `%%capture`, `%%writefile model.py`, ...).
_SHELL_MAGICS = frozenset({"bash", "sh", "script", "system", "sx"})
_OTHER_MAGICS = frozenset({"html", "javascript", "js", "latex", "markdown", "svg", "perl", "ruby", "file"})

# `!cmd`, `%magic`, `%%magic`, also assigned: `files = !ls`, `t = %timeit -o f()`.
_IPYTHON_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?:[\w.]+(?:[ \t]*,[ \t]*[\w.]+)*[ \t]*=(?!=)[ \t]*)?(?P<sigil>!|%%?(?=[A-Za-z_]))"
)


@dataclass(frozen=True)
class CellLines:
    """One code cell split into what Python sees and what IPython handles itself."""

    python: str  # IPython-only lines replaced by `pass`; "" when the body is not Python
    shell: tuple[str, ...]  # `!cmd` lines and `%%bash` body lines, as written
    magic: tuple[str, ...]  # `%line` and `%%cell` magics, as written
    ipython_comments: tuple[str, ...]  # `#` comments on those lines (the shell ignores them)


@dataclass(frozen=True)
class SourceFacts:
    imports: tuple[str, ...]  # top-level module names, sorted, unique
    shell_lines: tuple[str, ...]  # in notebook order
    magic_lines: tuple[str, ...]
    colab_calls: tuple[str, ...]  # `google.colab` imports and calls on what they bound
    mnist_roots: tuple[str, ...]  # literal roots of datasets.MNIST(...), in order of appearance


def split_cell(source: str) -> CellLines:
    lines = source.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or not lines[first].lstrip().startswith("%%"):
        return _split_lines(lines)
    head, body = lines[first].strip(), lines[first + 1 :]
    language = _body_language(head)
    comments = [c for c in [shell_comment(head)] if c]
    if language == "python":
        rest = _split_lines(body)
        return CellLines(
            python="pass\n" + rest.python,
            shell=rest.shell,
            magic=(head, *rest.magic),
            ipython_comments=(*comments, *rest.ipython_comments),
        )
    shell = []
    for line in body if language == "shell" else ():
        comment = shell_comment(line)
        if comment:
            comments.append(comment)
        if line.strip() and not line.strip().startswith("#"):
            shell.append(line.strip())
    return CellLines(python="", shell=tuple(shell), magic=(head,), ipython_comments=tuple(comments))


def _body_language(head: str) -> str:
    words = head[2:].split()
    name = words[0] if words else ""
    if name in _SHELL_MAGICS:
        return "shell"
    if name == "writefile":
        return "python" if words[-1].endswith(".py") else "other"
    return "other" if name in _OTHER_MAGICS else "python"


def _split_lines(lines: list[str]) -> CellLines:
    python: list[str] = []
    shell: list[str] = []
    magic: list[str] = []
    comments: list[str] = []
    i = 0
    while i < len(lines):
        match = _IPYTHON_LINE.match(lines[i])
        if not match:
            python.append(lines[i])
            i += 1
            continue
        end = i  # IPython joins backslash continuations into one line
        while lines[end].rstrip().endswith("\\") and end + 1 < len(lines):
            end += 1
        text = " ".join(line.strip().removesuffix("\\").strip() for line in lines[i : end + 1])
        (shell if match["sigil"] == "!" else magic).append(text)
        comment = shell_comment(text)
        if comment:
            comments.append(comment)
        python.extend([match["indent"] + "pass"] + [""] * (end - i))
        i = end + 1
    return CellLines("\n".join(python), tuple(shell), tuple(magic), tuple(comments))


def shell_comment(line: str) -> Optional[str]:
    """The `# ...` that ends a shell-like line: a `#` outside quotes, at the start of a word."""
    quote = None
    previous = " "
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return line[i:]
        previous = char
    return None


def source_facts(cells: Sequence[CellLines]) -> SourceFacts:
    trees = [parse_python(cell.python) for cell in cells]
    parsed = [tree for tree in trees if tree is not None]
    strings = _string_constants(parsed)
    colab_names = _colab_names(parsed)
    imports: set[str] = set()
    colab: list[str] = []
    roots: list[str] = []
    for cell, tree in zip(cells, trees, strict=True):
        if tree is None:
            imports.update(_regex_imports(cell.python))
            colab.extend(_regex_colab(cell.python))
            roots.extend(_regex_roots(cell.python))
            continue
        for node in sorted(_interesting(tree), key=lambda n: (n.lineno, n.col_offset)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = _modules(node)
                imports.update(m.split(".")[0] for m in modules)
                if any(map(_is_colab, modules)):
                    colab.append(_segment(cell.python, node))
            elif _root_name(node.func) in colab_names:
                colab.append(_segment(cell.python, node))
            elif _is_mnist(node.func):
                root = _root_argument(node)
                value = _literal(root, strings) if root is not None else None
                if value is not None:
                    roots.append(value)
    return SourceFacts(
        imports=tuple(sorted(imports)),
        shell_lines=tuple(line for cell in cells for line in cell.shell),
        magic_lines=tuple(line for cell in cells for line in cell.magic),
        colab_calls=tuple(colab),
        mnist_roots=tuple(dict.fromkeys(roots)),
    )


def parse_python(source: str) -> Optional[ast.Module]:
    """The syntax tree of a cell's Python part; None where it does not parse."""
    try:
        return pysyntax.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _interesting(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom | ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)))


def _modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or not node.module:
        return []  # relative imports name the student's own files
    if node.module == "google":  # from google import colab
        return [f"google.{alias.name}" for alias in node.names]
    return [node.module]


def _is_colab(module: str) -> bool:
    return module == "google.colab" or module.startswith("google.colab.")


def _colab_names(trees: Iterable[ast.Module]) -> frozenset[str]:
    """Names bound by importing from google.colab (`drive` after `from google.colab import drive`)."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(map(_is_colab, _modules(node))):
                names.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_colab(alias.name):
                        names.add(alias.asname or alias.name.split(".")[0])
    return frozenset(names)


def _string_constants(trees: Iterable[ast.Module]) -> dict[str, str]:
    """Top-level `NAME = "text"` across the notebook; a name given two different values is dropped."""
    values: dict[str, Optional[str]] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target = node.target
            else:
                continue
            if isinstance(target, ast.Name):
                text = _literal(node.value, {})
                values[target.id] = text if values.get(target.id, text) == text else None
    return {name: text for name, text in values.items() if text is not None}


def _root_name(node: ast.AST) -> Optional[str]:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _is_mnist(func: ast.AST) -> bool:
    return ((isinstance(func, ast.Name) and func.id == "MNIST")
            or (isinstance(func, ast.Attribute) and func.attr == "MNIST"))


def _root_argument(call: ast.Call) -> Optional[ast.AST]:
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    return next((kw.value for kw in call.keywords if kw.arg == "root"), None)


def _literal(node: Optional[ast.AST], strings: dict[str, str]) -> Optional[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in node.values):
        # an f-string without placeholders
        return "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.Name):
        return strings.get(node.id)
    return None


def _segment(source: str, node: ast.AST) -> str:
    return " ".join((ast.get_source_segment(source, node) or "").split())


# Fallbacks for cells that do not parse (a syntax error, IPython help `obj?`, ...).
_IMPORT_LINE = re.compile(r"^[ \t]*import[ \t]+([^#;\n]+)", re.M)
_FROM_LINE = re.compile(r"^[ \t]*from[ \t]+([\w.]+)[ \t]+import\b", re.M)
_COLAB_LINE = re.compile(r"google\.colab|\bdrive\.mount\s*\(|\bfiles\.(?:upload|download)\s*\(")
_MNIST_ROOT = re.compile(
    r"\bMNIST\s*\(\s*(?:root\s*=\s*)?[rRuU]?(['\"])(?P<root>.*?)\1"
    r"|\bMNIST\s*\([^)]*?\broot\s*=\s*[rRuU]?(['\"])(?P<kw_root>.*?)\3"
)


def _regex_imports(source: str) -> set[str]:
    found = {m[1] for m in _FROM_LINE.finditer(source) if not m[1].startswith(".")}
    for match in _IMPORT_LINE.finditer(source):
        found.update(part.split()[0] for part in match[1].split(",") if part.split())
    return {name.split(".")[0] for name in found if name.split(".")[0].isidentifier()}


def _regex_colab(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if _COLAB_LINE.search(line)]


def _regex_roots(source: str) -> list[str]:
    return [m["root"] if m["root"] is not None else m["kw_root"] for m in _MNIST_ROOT.finditer(source)]
