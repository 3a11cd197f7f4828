"""What the student notebooks need works inside the sandbox: torch imports, DataLoader workers share memory
through /dev/shm."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from grader.sandbox import SandboxResult, SandboxSpec, run_sandboxed

# Fails with the fix where bubblewrap is missing or refused (conftest.py): ./setup.sh installs it.
pytestmark = pytest.mark.usefixtures("bwrap")

DATALOADER = """
import torch
from torch.utils.data import DataLoader, TensorDataset

data = TensorDataset(torch.randn(512, 1, 28, 28), torch.randint(0, 10, (512,)))
seen = sum(len(y) for _, y in DataLoader(data, batch_size=64, num_workers=2))
print("samples", seen)
"""


def run_python(tmp_path: Path, code: str, **spec: int) -> SandboxResult:
    settings = {"memory_bytes": 4 << 30, "wall_seconds": 120, **spec}
    return run_sandboxed([sys.executable, "-c", code], SandboxSpec(scratch=tmp_path / "scratch", **settings))


def test_torch_imports_inside(tmp_path: Path) -> None:
    result = run_python(tmp_path, "import torch; print(torch.__version__)")
    assert (result.returncode, result.stdout.strip()) == (0, torch.__version__), result


def test_dataloader_workers_run_inside(tmp_path: Path) -> None:
    result = run_python(tmp_path, DATALOADER)
    assert (result.returncode, result.stdout.strip()) == (0, "samples 512"), result


def test_dataloader_workers_need_the_sized_shm(tmp_path: Path) -> None:
    # The reason shm_bytes exists: workers hand batches over in /dev/shm.
    result = run_python(tmp_path, DATALOADER, shm_bytes=1 << 20)
    assert result.returncode != 0 and "shared memory" in result.stderr
