"""`grade check --json` in its own process (which runs the notebook in the sandbox, never in this kernel),
its progress passed on line by line, its JSON handed back.

The kernel imports nothing of the grading stages: torch, the sandbox and the rubric engine load in the
child. The child is the grader this kernel imported (its folder leads PYTHONPATH unless it is installed).
"""

from __future__ import annotations

import json
import os
import queue
import site
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grader
from grader.errors import GraderError

FLAGS = {"static": ["--static"], "dry-run": ["--dry-run"], "full": []}
# What `grade check` writes on stderr for each step when stderr is not a terminal (grader.cli.common.status_line).
STEP = "checking: "
TICK_S = 1.0  # how often the progress line's seconds move while a step runs
# Exit codes of `grade check` that come with its JSON: passed (or nothing judged failed), not passed, not graded.
WITH_JSON = (0, 1, 3)
USAGE = 2  # a GraderError: the child printed what, where and the fix


def _env() -> dict[str, str]:
    root = str(Path(grader.__file__).resolve().parents[1])
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root in installed:
        return dict(os.environ)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}


def run_check(path: Path, *, rubric: str, depth: str, progress: Callable[[str], None]) -> dict[str, Any]:
    """The JSON of `grade check PATH --json` at `depth`; `progress` hears each step (and a tick each second)."""
    argv = [sys.executable, "-m", "grader", "check", str(path), "--rubric", rubric, "--json", *FLAGS[depth]]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             text=True, encoding="utf-8", errors="replace", env=_env())
    out, err = child.stdout, child.stderr
    assert out is not None and err is not None, "Popen(stdout=PIPE, stderr=PIPE) gives both pipes"
    lines: queue.Queue[str | None] = queue.Queue()
    stdout: list[str] = []

    def read_stderr() -> None:
        for line in err:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    readers = [threading.Thread(target=read_stderr, daemon=True),
               threading.Thread(target=lambda: stdout.append(out.read()), daemon=True)]
    for reader in readers:
        reader.start()
    said: list[str] = []
    doing = "starting"
    try:
        while True:
            try:
                line = lines.get(timeout=TICK_S)
            except queue.Empty:
                progress(doing)
                continue
            if line is None:
                break
            if line.startswith(STEP):
                doing = line[len(STEP):]
            elif line.strip():
                said.append(line)
            progress(doing)
        code = child.wait()
        for reader in readers:
            reader.join()
    finally:
        if child.poll() is None:  # interrupted (the notebook's stop button): the child and its sandbox go too
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
    return _output(code, "".join(stdout), said, path)


def _output(code: int, stdout: str, said: list[str], path: Path) -> dict[str, Any]:
    if code == USAGE and said:
        what = "\n".join(said)
        raise GraderError(what.removeprefix("error: "))
    try:
        output = json.loads(stdout) if code in WITH_JSON else None
    except json.JSONDecodeError:
        output = None
    if not isinstance(output, dict) or "score" not in output:
        tail = "\n".join(said[-15:]) or "(nothing)"
        raise GraderError(f"the check stopped without a result (exit code {code}); it printed:\n{tail}",
                          where=f"grade check {path}",
                          fix=f"run `{Path(sys.executable).name} -m grader check {path}` in a terminal to see it "
                              "whole; if the grader itself failed, report it with that output")
    return output
