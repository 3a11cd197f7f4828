"""How a run ended, in one word and one sentence (pure: from what the sandbox and the harness reported).

Precedence: a limit the sandbox enforced (time, memory, output) > the harness could not
run > no model > a model that cannot be graded > ok. Cells that failed while a model
was still captured and measured do not fail the run: the message names them, and
`verdict.cell` points at the first.
"""

from __future__ import annotations

from typing import Any, Optional

from grader.execute.hints import hint_for, missing_module
from grader.facts import VerdictFacts


def _first_failed(cells: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    return next((c for c in cells if c["status"] in ("error", "timeout")), None)


def _describe(cell: dict[str, Any]) -> str:
    text = f"cell {cell['index']} failed: {cell['error']}"
    hint = hint_for(cell.get("error") or "")
    return f"{text}. {hint}" if hint else text


def decide(*, timed_out: bool, memory_exceeded: bool, output_truncated: bool, wall_seconds: float,
           memory_bytes: int, run: Optional[dict[str, Any]], harness: Optional[dict[str, Any]],
           output_tail: str = "") -> VerdictFacts:
    cells = (run or {}).get("cells", [])
    failed = _first_failed(cells)
    cell_index = failed["index"] if failed else None
    tail = output_tail[-2000:] or None

    failed_cells = [c["index"] for c in cells if c["status"] in ("error", "timeout")] if run else None

    def verdict(kind: str, message: str, cell: Optional[int] = cell_index) -> VerdictFacts:
        return VerdictFacts(kind=kind, message=message, cell=cell, failed_cells=failed_cells, output_tail=tail)

    if memory_exceeded:
        return verdict("memory", f"the notebook used more than {memory_bytes / 2**30:.1f} GiB of memory and was stopped"
                       + (f" (in cell {cell_index})" if cell_index is not None else ""))
    if timed_out:
        running = next((c["index"] for c in cells if c["status"] == "not_run"), None)
        return verdict("timeout", f"the notebook ran longer than {wall_seconds:g} s and was stopped"
                       + (f"; cell {running} was running" if running is not None else ""), running)
    timeout_cell = next((c for c in cells if c["status"] == "timeout"), None)
    if timeout_cell:
        return verdict("timeout", f"cell {timeout_cell['index']}: {timeout_cell['error']}", timeout_cell["index"])
    if output_truncated or (run or {}).get("output_limit_hit"):
        return verdict("output_limit", "the notebook printed more output than the grader keeps, and was stopped")
    if run is None:
        if "bwrap:" in output_tail:  # bubblewrap itself refused: the grader's set-up, not the student's code
            return verdict("sandbox_error", "the sandbox could not start: " + output_tail.split("bwrap:", 1)[1][:300].strip())
        return verdict("crash", "the notebook's runner was killed before it could report "
                       "(a cell may have killed its parent process or the whole process group)")
    if run.get("kernel_died"):
        return verdict("crash", f"the kernel died ({run['kernel_died']})"
                       + (f" in cell {cell_index}" if cell_index is not None else ""))
    if harness is None or harness.get("model_error"):
        why = (harness or {}).get("model_error") or run.get("harness_error") or "no report from the harness"
        return verdict("crash", f"the grader could not read the model after the last cell: {why}")
    if not harness.get("model_variable"):
        if failed:
            module = missing_module(failed["error"] or "")
            if module:
                return verdict("missing_module", f"cell {failed['index']} imports `{module}`, which the grading "
                               "environment does not have; no model could be captured")
            return verdict("crash", _describe(failed) + "; no model could be captured")
        return verdict("no_model", harness.get("model_found") or "no model found")
    if harness.get("bad_model"):
        return verdict("bad_model", harness["bad_model"])
    notes = [_describe(c) for c in cells if c["status"] == "error"]
    message = "the notebook ran and its model was captured"
    if notes:
        message += "; some cells failed and grading went on: " + " | ".join(notes[:3])
    return verdict("ok", message)
