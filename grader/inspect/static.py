"""Static inspection of one submission: facts read from the file alone, no student code run.

Fast by design (well under a second for a typical notebook): students run it
before they upload, as `grade check --static`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nbformat import NotebookNode

from grader.execute.cell_error import saved_error
from grader.facts import ClaimsFacts, NotebookFacts
from grader.inspect.claims import find_claims
from grader.inspect.comments import comment_report
from grader.inspect.notebook import DEFAULT_MAX_BYTES, load_submission
from grader.inspect.source import source_facts, split_cell


@dataclass(frozen=True)
class StaticReport:
    path: Path
    format: Literal["ipynb", "py"]
    notebook: NotebookNode  # nbformat v4 (a .py script wrapped into cells): what the sandbox runs
    notebook_facts: NotebookFacts
    claims: ClaimsFacts
    mnist_roots: tuple[str, ...]  # literal roots passed to datasets.MNIST(...): where to stage the data


def inspect_submission(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> StaticReport:
    """Read a notebook (.ipynb, any nbformat version) or a .py script and report what it holds.

    Raises GraderError (naming the file) for a file that is not a notebook,
    not JSON, not UTF-8, or larger than `max_bytes`.
    """
    submission = load_submission(path, max_bytes=max_bytes)
    # numbered as a student counts them: code cells only, from 1 (what every message and fact says)
    code = [(number, cell.source, split_cell(cell.source))
            for number, cell in enumerate((c for c in submission.cells if c.kind == "code"), 1)]
    comments = comment_report(code)
    source = source_facts([lines for _, _, lines in code])
    claims = find_claims((cell.index, cell.outputs, cell.source) for cell in submission.cells if cell.kind == "code")
    return StaticReport(
        path=submission.path,
        format=submission.format,
        notebook=submission.notebook,
        notebook_facts=NotebookFacts(
            code_cells=len(code),
            markdown_cells=sum(cell.kind == "markdown" for cell in submission.cells),
            comment_coverage=comments.coverage,
            uncommented_cells=list(comments.uncommented),
            saved_error_cells=[n for n, cell in enumerate((c for c in submission.cells if c.kind == "code"), 1)
                               if cell.saved_error],
            saved_error=saved_error([c for c in submission.notebook.cells if c.cell_type == "code"]),
            shell_lines=list(source.shell_lines),
            magic_lines=list(source.magic_lines),
            colab_calls=list(source.colab_calls),
            imports=list(source.imports),
        ),
        claims=claims.facts(),
        mnist_roots=source.mnist_roots,
    )
