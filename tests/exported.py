"""A module exported the way the notebook harness exports a student's model, and read back as the clean
evaluation reads it: `kernel_harness._export` (torch.export, non-strict, a dynamic batch) writes model.pt2,
and `torch.export.load` reads the file (our own, trusted)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from grader.execute.kernel_harness import _export


def exported(module: torch.nn.Module) -> torch.export.ExportedProgram:
    with tempfile.TemporaryDirectory() as folder:
        found = _export(module.eval(), folder)
        assert found["path"] == "export" and found["batch"] is None, found  # a dynamic batch, as for a course net
        return torch.export.load(Path(folder) / found["file"])
