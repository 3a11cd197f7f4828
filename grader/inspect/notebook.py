"""Reading a submission into cells: a Jupyter notebook (any nbformat version) or a .py script.

Everything a user can get wrong here (not JSON, JSON that is not a notebook,
a file too large, not UTF-8) is a GraderError that names the file and says
what to hand in instead. Nothing here runs or imports student code.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nbformat
from nbformat import NotebookNode

from grader.errors import GraderError

DEFAULT_MAX_BYTES = 20 * 1024 * 1024

_RESAVE = "hand in the .ipynb file that Jupyter or Colab saves (Colab: File > Download > Download .ipynb)"

# VS Code / Jupytext / Spyder "percent" cells: `# %%`, `# %% Title`, `# %% [markdown]`.
_CELL_MARKER = re.compile(r"^#\s*%%(?!%)(?P<rest>.*)$")
_MARKDOWN_TAG = re.compile(r"^\s*\[(?:markdown|md)\]", re.I)


@dataclass(frozen=True)
class Cell:
    index: int  # position among all cells, 0-based, as Jupyter shows it
    kind: Literal["code", "markdown", "raw"]
    source: str
    outputs: tuple[str, ...]  # text of each saved output, in order (streams, text/plain results)
    saved_error: bool = False  # a saved output is an error: the run that saved them failed in this cell


@dataclass(frozen=True)
class Submission:
    path: Path
    format: Literal["ipynb", "py"]
    notebook: NotebookNode  # nbformat v4; a .py script is wrapped into one
    cells: tuple[Cell, ...]


def load_submission(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Submission:
    """Read a notebook or a .py script; refuse files over `max_bytes` before reading them."""
    path = Path(path)
    text = _read_text(path, max_bytes)
    fmt: Literal["ipynb", "py"]
    if path.suffix.lower() == ".py":
        notebook, fmt = notebook_from_script(text), "py"
    else:
        notebook, fmt = parse_notebook(text, where=str(path)), "ipynb"
    return Submission(path=path, format=fmt, notebook=notebook, cells=cells_of(notebook))


def _read_text(path: Path, max_bytes: int) -> str:
    if path.is_dir():
        raise GraderError("is a folder, not a submission", where=str(path),
                          fix="pass the .ipynb (or .py) file inside it")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise GraderError("no such file", where=str(path), fix="check the path and the file name") from None
    if size > max_bytes:
        shown = _human(size) if _human(size) != _human(max_bytes) else f"{size:,} bytes"
        raise GraderError(
            f"the file is {shown}, over the {_human(max_bytes)} limit for a submission",
            where=str(path),
            fix="clear large outputs (images, per-batch training logs) and save again, or raise the size limit",
        )
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise GraderError(
            f"not UTF-8 text (byte {err.start} cannot be decoded), so not a notebook",
            where=str(path),
            fix=_RESAVE,
        ) from None


def _human(n: int) -> str:
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def parse_notebook(text: str, *, where: str) -> NotebookNode:
    """The notebook in `text` as nbformat v4 (older versions are upgraded by nbformat)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GraderError(
            f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}), so not a notebook",
            where=where,
            fix=f"the file may be truncated or not a notebook at all; {_RESAVE}",
        ) from None
    problem = not_a_notebook(data)
    if problem is None:
        try:
            with warnings.catch_warnings():
                # nbformat warns about missing cell ids and the like; Jupyter opens those notebooks fine.
                warnings.simplefilter("ignore")
                notebook = nbformat.reads(text, as_version=4)
        except (nbformat.NBFormatError, nbformat.ValidationError, AttributeError, KeyError, TypeError) as err:
            problem = f"nbformat cannot read it ({err})"
        else:
            problem = _cells_problem(notebook)
    if problem:
        raise GraderError(f"JSON, but not a Jupyter notebook: {problem}", where=where, fix=_RESAVE)
    broken = _not_unicode(notebook)
    if broken:
        raise GraderError(f"{broken} holds a character that is not valid Unicode (a lone surrogate such as "
                          "\\ud800, escaped in the file's JSON), so the grader cannot read it as text", where=where,
                          fix="delete that character (retype the line), save the notebook and hand it in again")
    return notebook


def _encodable(value: Any) -> bool:
    """Whether `value` (JSON data) is valid Unicode throughout: JSON's \\u escapes can spell a lone surrogate,
    which no text file, parser or report can hold."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_unicode(notebook: NotebookNode) -> str | None:
    """Where the notebook holds text that is not Unicode (the cell, and the line of its source), or None."""
    code = 0
    for index, cell in enumerate(notebook.cells, 1):
        code += cell.cell_type == "code"
        if _encodable(cell):
            continue
        name = f"code cell {code}" if cell.cell_type == "code" else f"cell {index} ({cell.cell_type})"
        lines = _text(cell.get("source", "")).splitlines()
        line = next((n for n, text in enumerate(lines, 1) if not _encodable(text)), None)
        return f"{name}, " + (f"line {line} of its source," if line else "in its saved outputs or metadata,")
    return None if _encodable(notebook.get("metadata", {})) else "the notebook's metadata"


# Where each nbformat version keeps its cells: v2 and v3 in worksheets, v1 and v4 in a list of cells.
_CELLS_KEY = {1: "cells", 2: "worksheets", 3: "worksheets", 4: "cells"}


def not_a_notebook(data: Any) -> str | None:
    """Why parsed JSON is not a Jupyter notebook at all, in words for whoever handed it in; None when it may be.

    Checked before nbformat reads it: nbformat's own errors on such JSON ("could not be converted from
    version 1 to version 2") speak of its upgrade steps, not of the file."""
    if not isinstance(data, dict):
        return f"the top level is a JSON {type(data).__name__}, not an object with 'cells'"
    version = data.get("nbformat")
    keys = ", ".join(sorted(map(str, data))[:6]) or "none"
    if version is None:
        return f"there is no 'nbformat' field (top-level keys: {keys})"
    if type(version) is not int or version not in nbformat.versions:
        return f"nbformat version {version!r} is not one nbformat knows ({', '.join(map(str, nbformat.versions))})"
    cells = _CELLS_KEY.get(version, "cells")
    if not isinstance(data.get(cells), list):
        return f"it says nbformat {version} but has no '{cells}' list (top-level keys: {keys})"
    return None


def _cells_problem(notebook: NotebookNode) -> str | None:
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        return "'cells' is not a list"
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            return f"cell {index} has no valid 'cell_type'"
    return None


def notebook_from_script(text: str) -> NotebookNode:
    """A .py script as a notebook: one code cell, or one cell per `# %%` marker.

    A marker's title (`# %% Load the data`) is kept as a comment on the cell's
    first line, since that is what the title documents.
    """
    chunks: list[tuple[str, list[str]]] = [("code", [])]
    for line in text.splitlines():
        marker = _CELL_MARKER.match(line)
        if not marker:
            chunks[-1][1].append(line)
            continue
        rest = marker["rest"]
        if _MARKDOWN_TAG.match(rest):
            chunks.append(("markdown", []))
        else:
            chunks.append(("code", [f"# {rest.strip()}"] if rest.strip() else []))
    if len(chunks) > 1 and not "".join(chunks[0][1]).strip():
        chunks.pop(0)  # nothing before the first marker
    cells = []
    for kind, lines in chunks:
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(_uncomment(body)))
        else:
            cells.append(nbformat.v4.new_code_cell(body))
    return nbformat.v4.new_notebook(cells=cells)


def _uncomment(body: str) -> str:
    return "\n".join(re.sub(r"^# ?", "", line) for line in body.splitlines())


def cells_of(notebook: NotebookNode) -> tuple[Cell, ...]:
    return tuple(
        Cell(
            index=index,
            kind=cell.cell_type,
            source=_text(cell.get("source", "")),
            outputs=tuple(_output_texts(cell.get("outputs") or ())),
            saved_error=any(out.get("output_type") == "error" for out in cell.get("outputs") or ()),
        )
        for index, cell in enumerate(notebook.cells)
    )


def _output_texts(outputs: Any) -> list[str]:
    texts = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            texts.append(_text(output.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            texts.append(_text((output.get("data") or {}).get("text/plain", "")))
    return [text for text in texts if text]


def _text(value: Any) -> str:
    # The JSON may store multi-line strings as lists of lines.
    return "".join(value) if isinstance(value, list) else str(value)
