"""The error a code cell raised, as a report quotes it: type, message, the student's own traceback lines, a hint.

Pure. The traceback is IPython's, as the runner keeps it (ANSI codes removed,
frames joined by newlines): a frame starts with `Cell In[7], line 3` (a
notebook cell) or `File /path/x.py:12, in f()` (a module); a saved notebook
may hold older IPython's (Colab's), `<ipython-input-7-...> in <module>()` and
`Input In [7], in <cell line: 3>()`, with module frames as `/path/x.py in f()`. Only the student's
frames are kept: the notebook's cells and the hand-in's modules, not the
libraries' (torch, site-packages) or the grader's harness. Everything here is
student-controlled text, so it is capped; escaping is the report's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Optional

from grader.execute.hints import hint_for
from grader.facts import CellErrorFacts

MESSAGE_CHARS = 600  # an error message longer than this is cut, with a note of how much was left out
TRACEBACK_LINES = 24  # the student's frames, their last lines (the innermost frames say most)
LINE_CHARS = 240

_FRAME = re.compile(r"^(Cell In\[\d+\], line \d+|Input In \[\d+\]|<ipython-input-\d+-|File |/\S+ in )")
_CELL = re.compile(r"^(?:Cell In\[(\d+)\]|Input In \[(\d+)\]|<ipython-input-(\d+)-\w*>)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # a saved notebook's traceback keeps Jupyter's colours
# where code that is not the student's lives: installed packages, the standard library, the grader's harness and
# compat shims (a hand-in's folder can sit anywhere, /srv/grader/jobs/... too: no broader pattern than these)
_LIBRARY = re.compile(r"^(File )?([^,\n]*/(site|dist)-packages/|[^,\n]*/lib/python\d|[^,\n]*/grader/execute/"
                      r"|<frozen )")


def cut(text: str, limit: int) -> str:
    """`text` up to `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters not shown)"


def _frames(traceback: str) -> list[list[str]]:
    """The traceback's frames, each a list of lines (its header first); the lines before the first frame dropped."""
    frames: list[list[str]] = []
    for line in traceback.splitlines():
        if _FRAME.match(line):
            frames.append([line])
        elif frames:
            frames[-1].append(line)
    return frames


def _count(match: re.Match) -> int:
    """The execution count a notebook frame's header names, whichever IPython wrote it."""
    return int(next(g for g in match.groups() if g is not None))


def student_traceback(traceback: str, cell: int, error: str = "",
                      counts: Optional[Mapping[int, int]] = None) -> list[str]:
    """The lines of the student's own frames, with `Cell In[k]` named as the code cell a student counts.

    `counts`: execution count -> code cell, as a saved notebook records them. None: the grader's run, where the
    first notebook frame is the cell that failed (code cell `cell`) and the kernel's counts are offset from the
    student's numbering by the grader's set-up cell: that frame gives the offset.
    """
    body = _ANSI.sub("", traceback).rstrip()
    if error and body.endswith(error.strip()):  # the last lines repeat "ErrorName: message": shown on their own
        body = body[:-len(error.strip())]
    frames = _frames(body)
    if counts is None:
        seen = [_count(m) for f in frames if (m := _CELL.match(f[0]))]
        offset = seen[0] - cell if seen else 0
        counts = {count: count - offset for count in seen}
    lines: list[str] = []
    for frame in frames:
        if _LIBRARY.match(frame[0]):
            continue
        header = _CELL.sub(lambda m: f"code cell {counts[_count(m)]}" if _count(m) in counts else m.group(0),
                           frame[0])
        lines += [header, *(ln for ln in frame[1:] if ln.strip())]
    shown = [cut(ln, LINE_CHARS) for ln in lines[-TRACEBACK_LINES:]]
    return (["…"] if len(lines) > TRACEBACK_LINES else []) + shown


def cell_error(cell: int, error: Optional[str], traceback: Optional[str] = None,
               counts: Optional[Mapping[int, int]] = None) -> CellErrorFacts:
    """The fact for code cell `cell`, which raised `error` ("ErrorName: message", as the runner records it)."""
    error = _ANSI.sub("", error or "")
    kind, sep, message = error.partition(": ")
    if not sep or not re.fullmatch(r"[\w.]+", kind):  # not "Name: message" (a timeout, the output limit)
        kind, message = "", error
    return CellErrorFacts(cell=cell, type=kind or None, message=cut(message.strip(), MESSAGE_CHARS),
                          traceback=student_traceback(traceback or "", cell, error, counts), hint=hint_for(error))


def saved_error(cells: list) -> CellErrorFacts:
    """The error the first code cell with one shows in a notebook's saved outputs (`cells`: nbformat code cells)."""
    counts = {c.get("execution_count"): n for n, c in enumerate(cells, 1) if isinstance(c.get("execution_count"), int)}
    for number, cell in enumerate(cells, 1):
        for out in cell.get("outputs") or ():
            if out.get("output_type") == "error":
                traceback = out.get("traceback")
                return cell_error(number, f"{out.get('ename')}: {out.get('evalue')}",
                                  "\n".join(map(str, traceback)) if isinstance(traceback, list) else "", counts)
    return CellErrorFacts()
