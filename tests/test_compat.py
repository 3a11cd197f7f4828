"""Compat profiles (issue 14): each shim reads the old API as it meant then, and records itself only when student
code goes through it. Each case runs in a fresh interpreter: the shims patch library classes."""

from __future__ import annotations

import json
import subprocess
import sys

from grader.env import build as env_build


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_torch_1x_reads_dataiter_next_and_tqdm_notebook_and_records_each_use():
    out = _run("""
import json, warnings
from grader.execute import compat
compat.load(["torch-1.x"])
before = compat.used()
import torch
from torch.utils.data import DataLoader, TensorDataset
loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=4)
dataiter = iter(loader)
first = dataiter.next()[0].tolist()
from tqdm import tqdm_notebook
with warnings.catch_warnings():
    warnings.simplefilter("error")  # tqdm's deprecation warning is not raised: the text bar is used
    total = sum(x for x in tqdm_notebook(range(4), disable=True))
print(json.dumps({"before": before, "first": first, "total": total, "used": compat.used(),
                  "skipped": compat.skipped()}))
""")
    assert out["before"] == []  # loading a profile is not using it
    assert out["first"] == [0.0, 1.0, 2.0, 3.0] and out["total"] == 6
    assert out["used"] == ["torch-1.x: DataLoader iterator .next()", "torch-1.x: tqdm_notebook"]
    assert out["skipped"] == []


def test_a_keras_profile_where_keras_is_missing_is_skipped_and_says_why():
    out = _run("""
import json, sys
sys.modules["keras"] = None  # an environment without keras, whatever this machine has
from grader.execute import compat
compat.load(["keras-2"])
print(json.dumps({"used": compat.used(), "skipped": compat.skipped()}))
""")
    assert out["used"] == []
    assert len(out["skipped"]) == 3 and all(s.startswith("keras-2: ") and "keras" in s for s in out["skipped"])


def test_uv_installs_when_it_is_on_path_and_pip_otherwise(tmp_path, monkeypatch):
    python = tmp_path / "venv" / "bin" / "python"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tool, argv = env_build.installer(python)
    assert tool == "pip" and argv[:3] == [sys.executable, "-m", "pip"] and str(python) in argv
    fake = tmp_path / "bin" / "uv"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    tool, argv = env_build.installer(python)
    assert tool == "uv" and argv == [str(fake), "pip", "install", "--python", str(python)]
