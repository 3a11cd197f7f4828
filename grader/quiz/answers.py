"""Students' answers: reading them (YAML, JSON, CSV, a notebook cell tagged `quiz`) and normalising them.

Reading takes text (the CLI opens the file) and returns {question id: raw answer}.
Normalising turns one raw answer into numbers, a choice or true/false, accepting
the forms people write: "22x22", "22 x 22", "22", "(22, 22)", "195x195x32",
"18,432", "b)", "True".
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from grader import pysyntax
from grader.errors import GraderError

FORMATS = ("yaml", "json", "csv", "ipynb")


# ---------------------------------------------------------------- normalising

@dataclass(frozen=True)
class Normalized:
    raw: str  # the answer as written, for feedback
    numbers: tuple[float, ...] | None  # every number in the answer, if it reads as numbers only
    text: str  # lower case, spaces collapsed
    truth: bool | None  # true / false, if it reads as one

    @property
    def blank(self) -> bool:
        return not self.text


_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?")
_SEPARATORS = re.compile(r"[\sx×*,;:()\[\]{}'\"=]+")
_UNITS = re.compile(r"\b(?:rf|px|pixels?|params?|parameters?|weights?|layers?|pools?|max-?pools?|channels?|by|"
                    r"h|w|c|hxwxc|hxw|output|size|answer|is)\b")
_TRUE = {"true", "t", "yes", "y", "1", "correct"}
_FALSE = {"false", "f", "no", "n", "0", "incorrect"}


def normalize(raw: Any) -> Normalized:
    """One answer in every form a checker may need."""
    if raw is None:
        return Normalized("", None, "", None)
    if isinstance(raw, bool):
        return Normalized(str(raw).lower(), None, str(raw).lower(), raw)
    if isinstance(raw, (int, float)):
        return Normalized(_show(raw), (float(raw),), _show(raw), None)
    if isinstance(raw, (list, tuple)):
        text = "x".join(_show(v) if isinstance(v, (int, float)) else str(v) for v in raw)
        return normalize(text)
    text = " ".join(str(raw).strip().lower().split())
    truth = True if text in _TRUE else False if text in _FALSE else None
    return Normalized(str(raw).strip(), _numbers(text), text, truth)


def _show(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _numbers(text: str) -> tuple[float, ...] | None:
    compact = text.replace("_", "").replace("\u2009", "")
    if _THOUSANDS.match(compact):
        return (float(compact.replace(",", "")),)
    numbers = _NUMBER.findall(compact)
    rest = _UNITS.sub(" ", _NUMBER.sub(" ", compact))
    if not numbers or _SEPARATORS.sub("", rest):
        return None
    return tuple(float(n) for n in numbers)


def fit(numbers: tuple[float, ...], size: int) -> tuple[float, ...] | None:
    """The student's numbers in the key's shape: "22" means 22x22; "195x195x32" answers HxW with 195x195.

    None when they cannot stand for a value of that size (two numbers for HxWxC).
    """
    if len(numbers) == size:
        return numbers
    if size == 2 and len(numbers) == 1:
        return numbers * 2
    if size == 2 and len(numbers) == 3:
        return numbers[:2]
    if size == 1 and len(numbers) == 3:
        return numbers[2:]  # "195x195x32" for "how many channels"
    return None


def same_numbers(answer: tuple[float, ...], key: tuple[float, ...], tolerance: float = 0.0) -> bool:
    fitted = fit(answer, len(key))
    return fitted is not None and all(abs(a - k) <= tolerance + 1e-9 * max(1.0, abs(k))
                                      for a, k in zip(fitted, key, strict=True))


def choice_letter(answer: Normalized, options: tuple[str, ...]) -> str | None:
    """The letter a multiple-choice answer means: an option's text first, then a letter (a, "b)", "(C)")."""
    for i, option in enumerate(options):
        if answer.text == " ".join(option.strip().lower().split()):
            return chr(97 + i)
    letter = answer.text.strip("().: ")
    if len(letter) == 1 and "a" <= letter < chr(97 + len(options)):
        return letter
    return None


# ---------------------------------------------------------------- reading

def parse_answers(text: str, fmt: str, source: str, student: str | None = None) -> dict[str, Any]:
    """{question id: raw answer} from the text of an answers file in `fmt` (yaml, json, csv, ipynb)."""
    if fmt not in FORMATS:
        raise GraderError(f"unknown answers format {fmt!r}", where=source,
                          fix="use a .yaml, .yml, .json, .csv or .ipynb file")
    if fmt == "csv":
        return _from_csv(text, source, student)
    if fmt == "ipynb":
        return from_notebook_text(text, source)
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GraderError(f"not valid JSON ({err.msg})", where=f"{source}:{err.lineno}",
                              fix='write {"question-id": "answer", ...}') from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise GraderError("not valid YAML", where=f"{source}:{mark.line + 1}" if mark else source,
                              fix="write one `question-id: answer` per line") from None
    return _mapping(data, source)


def format_of(path: str) -> str:
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return {"yml": "yaml", "yaml": "yaml", "json": "json", "csv": "csv", "ipynb": "ipynb"}.get(suffix, "")


def _mapping(data: Any, source: str) -> dict[str, Any]:
    if isinstance(data, dict) and isinstance(data.get("answers"), dict):
        data = data["answers"]  # {"student": ..., "answers": {...}} as well as the bare mapping
    if not isinstance(data, dict):
        raise GraderError("answers must be a mapping of question id to answer", where=source,
                          fix='write {"question-id": "answer", ...} (YAML: `question-id: answer` per line)')
    return {str(k): v for k, v in data.items()}


def _from_csv(text: str, source: str, student: str | None) -> dict[str, Any]:
    """Columns id (or question) and answer; with a student column, only that student's rows."""
    rows = [(line, row) for line, row in enumerate(csv.reader(io.StringIO(text)), 1) if any(c.strip() for c in row)]
    if not rows:
        return {}
    header = [cell.strip().lower() for cell in rows[0][1]]
    if "answer" in header and ("id" in header or "question" in header):
        id_col = header.index("id") if "id" in header else header.index("question")
        ans_col, who_col = header.index("answer"), header.index("student") if "student" in header else None
        rows = rows[1:]
    else:
        id_col, ans_col, who_col = 0, 1, None
    out: dict[str, Any] = {}
    for line, row in rows:
        if len(row) <= max(id_col, ans_col, who_col or 0):
            raise GraderError(f"row has {len(row)} column(s)", where=f"{source}:{line}",
                              fix="write `question-id,answer` (quote answers that contain commas: \"(22, 22)\")")
        if who_col is not None and student is not None and row[who_col].strip() != student:
            continue
        out[row[id_col].strip()] = row[ans_col].strip()
    return out


def from_notebook_text(text: str, source: str) -> dict[str, Any]:
    import nbformat  # only notebooks need it

    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises several types for a file that is not a notebook
        raise GraderError(f"not a readable notebook ({type(err).__name__})", where=source,
                          fix="save the notebook from Jupyter / Colab and try again") from None
    return from_notebook(notebook, source)


def _quiz_cells(notebook: Any) -> list[tuple[int, Any]]:
    cells = enumerate(notebook.get("cells", []))
    return [(i, c) for i, c in cells if "quiz" in (c.get("metadata", {}).get("tags") or [])]


def has_quiz_cell(notebook: Any) -> bool:
    return bool(_quiz_cells(notebook))


def from_notebook(notebook: Any, source: str = "notebook") -> dict[str, Any]:
    """Answers from the cells tagged `quiz` (YAML `id: answer` lines, JSON, or a Python dict literal)."""
    cells = _quiz_cells(notebook)
    if not cells:
        raise GraderError("no cell is tagged `quiz`", where=source,
                          fix="put the answers in one cell (`question-id: answer` per line) and add the tag `quiz` "
                              "(Jupyter: View > Cell Toolbar > Tags; Colab: edit the cell metadata)")
    out: dict[str, Any] = {}
    for index, cell in cells:
        out.update(_cell_answers(cell.get("source", ""), f"{source}, cell {index + 1} (tagged quiz)"))
    return out


def _cell_answers(text: str, where: str) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(text)
        if isinstance(data, dict):
            return _mapping(data, where)
    except yaml.YAMLError:
        pass
    try:
        tree = pysyntax.parse(text)
    except SyntaxError:
        tree = None
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Dict):
            try:
                return _mapping(ast.literal_eval(node), where)
            except ValueError:
                continue
    raise GraderError("the cell tagged `quiz` holds no answers I can read", where=where,
                      fix="write `question-id: answer` per line, or answers = {\"question-id\": \"answer\"}")
