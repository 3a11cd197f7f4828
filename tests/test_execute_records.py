"""Pure pieces of the execution records: the executed notebook's numbering, the output tail's filter."""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from grader.execute.job import without_kernel_noise
from grader.execute.runner import _renumbered


def test_executed_notebook_is_numbered_as_if_the_students_cells_ran_alone():
    ran = new_code_cell("1 + 1", execution_count=3,
                        outputs=[new_output("execute_result", data={"text/plain": "2"}, execution_count=3)])
    printed = new_code_cell("print(1)", execution_count=2, outputs=[new_output("stream", text="1\n")])
    not_run = new_code_cell("x = 1")  # after a timeout: never executed, no count
    cells = _renumbered([new_markdown_cell("# title"), printed, ran, not_run], offset=1)
    assert [c.get("execution_count") for c in cells] == [None, 1, 2, None]
    assert ran.outputs[0].execution_count == 2  # the Out[n] of a result follows its cell
    assert "execution_count" not in printed.outputs[0]


def test_the_kernels_tcp_warning_is_dropped_and_everything_else_kept():
    text = ("[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication ...\n"
            "Traceback (most recent call last):\n  ValueError: bad\n")
    assert without_kernel_noise(text) == "Traceback (most recent call last):\n  ValueError: bad\n"
    assert without_kernel_noise("no newline at the end") == "no newline at the end"
