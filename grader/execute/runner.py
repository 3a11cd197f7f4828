"""Runs inside the sandbox: executes the prepared notebook with nbclient and a real IPython kernel.

    python -m grader.execute.runner JOB.json

Both the client and the kernel live in the sandbox (TCP loopback does not cross the
network namespace, and signals reach the kernel). The host reads `run.json` and
`harness.json` from the output folder afterwards and trusts neither for the score.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from grader.execute.records import CellRecord, RunRecord
from grader.execute.run_job import RunJob

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


KERNEL_NAME = "grading-env"


def _kernel_spec(job: RunJob) -> str:
    """The kernel to start: the grading environment's python through a kernelspec in the output folder."""
    if not job.kernel_python:
        return "python3"
    folder = Path(job.out_dir) / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [job.kernel_python, "-P", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "grading environment", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(Path(job.out_dir) / "jupyter")
    return KERNEL_NAME


class OutputLimitExceeded(Exception):
    pass


class LimitedClient(NotebookClient):
    """A NotebookClient that stops the run once the cells have printed more than `output_limit` bytes."""

    def __init__(self, *args: Any, output_limit: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.output_limit = output_limit
        self.output_bytes = 0

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        self.output_bytes += len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values())
        if self.output_bytes > self.output_limit:
            raise OutputLimitExceeded(f"the notebook printed more than {self.output_limit:,} bytes")
        return super().output(outs, msg, display_id, cell_index)


def _error_of(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
            return _ANSI.sub("", f"{out.get('ename')}: {out.get('evalue')}"), tb[-4000:]
    return None


def _hidden_cell(source: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["grader"] = "harness"
    return cell


def _renumbered(cells: list, offset: int) -> list:
    """Execution counts as if the student's cells had run alone (the harness's set-up cell took the first `offset`)."""
    for cell in cells:
        if isinstance(cell.get("execution_count"), int):
            cell.execution_count -= offset
        for out in cell.get("outputs", []):
            if isinstance(out.get("execution_count"), int):
                out.execution_count -= offset
    return cells


def run(job: RunJob) -> RunRecord:
    nb = nbformat.read(job.notebook, as_version=4)
    student_cells = list(nb.cells)
    folders = list(dict.fromkeys([job.workdir, job.root]))
    setup = _hidden_cell(  # the hand-in's folders go on sys.path after the harness is imported: they cannot shadow it
        "import grader.execute.kernel_harness as __grader_harness\n"
        f"__grader_harness.install(dry_run={job.dry_run!r}, compat={list(job.compat)!r}, keras={job.keras!r}, "
        f"root={job.root!r}, notebook_dir={job.workdir!r})\n"
        "import sys as __grader_sys\n"
        f"__grader_sys.path[:0] = [p for p in {folders!r} if p not in __grader_sys.path]")
    finish = _hidden_cell(
        f"__grader_harness.finalize(globals(), {job.variable!r}, {job.out_dir!r}, {job.images_file!r}, "
        f"{job.variable_named!r}, {job.dry_run!r})")
    for cell in student_cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = [setup, *student_cells, finish]
    # nbclient takes whole seconds only (a fractional timeout raises): a 2.5 s limit lets a cell run 3 s
    client = LimitedClient(nb, timeout=math.ceil(job.cell_timeout), kernel_name=_kernel_spec(job), allow_errors=True,
                           resources={"metadata": {"path": job.workdir}}, output_limit=job.output_limit,
                           startup_timeout=120,
                           # nothing is read from the kernel after the last cell we run (the harness writes its
                           # record during that cell): a graceful shutdown would only wait ~2 s for it to exit
                           shutdown_kernel="immediate")
    code = [i for i, c in enumerate(student_cells) if c.cell_type == "code"]
    record = RunRecord(cells=[CellRecord(index=i, number=n, status="not_run") for n, i in enumerate(code, 1)])
    by_index = {c.index: c for c in record.cells}
    started = time.time()
    with client.setup_kernel():
        client.execute_cell(setup, 0)
        setup_failed = _error_of(setup)
        if setup_failed:
            record.harness_error = "harness set-up failed: " + setup_failed[0]
        for index, cell in enumerate(student_cells):
            if cell.cell_type != "code":
                continue
            cell_started = time.time()
            entry = by_index[index]
            try:
                client.execute_cell(cell, index + 1)
            except CellTimeoutError:
                entry.status, entry.error = "timeout", f"the cell ran longer than {job.cell_timeout:g} s"
                entry.seconds = round(time.time() - cell_started, 3)
                # stop the cell, keep the kernel: the harness still reads the model
                assert isinstance(client.km, AsyncKernelManager), "nbclient's kernel_manager_class is the async one"
                run_sync(client.km.interrupt_kernel)()
                time.sleep(2)
                break
            except OutputLimitExceeded as exc:
                entry.status, entry.error = "error", str(exc)
                record.output_limit_hit = True
                break
            except DeadKernelError as exc:
                entry.status, entry.error = "error", "the kernel died"
                record.kernel_died = str(exc)
                break
            entry.seconds = round(time.time() - cell_started, 3)
            failed = _error_of(cell)
            entry.status = "error" if failed else "ok"
            if failed:
                entry.error, entry.traceback = failed
        if not record.output_limit_hit and not record.kernel_died:
            client.timeout = job.harness_timeout
            try:
                client.execute_cell(finish, len(nb.cells) - 1)
                failed = _error_of(finish)
                if failed:
                    record.harness_error = failed[0]
            except Exception as exc:  # the harness must not turn a verdict into a crash
                record.harness_error = f"{exc.__class__.__name__}: {exc}"
    record.output_bytes = client.output_bytes
    record.seconds = round(time.time() - started, 3)
    nb.cells = _renumbered(student_cells, setup.get("execution_count") or 0)
    nbformat.write(nb, str(Path(job.out_dir) / "executed.ipynb"))
    return record


def main(argv: list[str]) -> int:
    job = RunJob.model_validate_json(Path(argv[0]).read_text())
    try:
        record = run(job)
    except Exception as exc:
        record = RunRecord(kernel_died=f"{exc.__class__.__name__}: {exc}")
    (Path(job.out_dir) / "run.json").write_text(record.model_dump_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
