"""`grade check --dry-run`: the model is built, not trained, and its facts are real — the parameter
count equals the notebook's own torchsummary output, and GAP is recognised however it is written."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from grader.cli.main import main

GAP = Path(__file__).parent / "fixtures" / "gap"

# Fails with the fix where bubblewrap is missing or refused (conftest.py): ./setup.sh installs it.
pytestmark = pytest.mark.usefixtures("bwrap")


@pytest.mark.parametrize("name, gap", [
    ("gap_adaptive_avgpool", True),
    ("gap_avgpool_whole_map", True),
    ("gap_functional_size", True),
    ("gap_mean_dims", True),
    ("gap_partial_avgpool_not_global", False),
])
def test_dry_run_counts_what_torchsummary_printed(name, gap, real_mnist_dir, capsys, tmp_path):
    started = time.monotonic()
    code = main(["check", str(GAP / f"{name}.ipynb"), "--dry-run", "--json", "--rubric", "mnist-s4",
                 "--data", str(real_mnist_dir), "--keep", str(tmp_path / "kept")])
    seconds = time.monotonic() - started
    out = json.loads(capsys.readouterr().out)
    facts, sheet = out["facts"], {i["id"]: i for i in out["score"]["items"]}
    assert facts["verdict"]["kind"] == "ok", facts["verdict"]["message"]
    assert facts["claims"]["params"] is not None
    assert facts["model"]["params"]["trainable"] == facts["claims"]["params"]  # torchsummary's "Total params"
    assert facts["model"]["gap"] is gap
    assert sheet["gap"]["status"] == ("passed" if gap else "failed")
    assert facts["model"]["transitions"] == 1 and facts["model"]["layers"]["linear"] == 0
    # nothing trained: accuracy and epochs are not judged, and say why
    assert facts["eval"]["accuracy"] is None and "dry run" in sheet["accuracy"]["evidence"]
    assert code == (0 if gap else 1)  # GAP is required in mnist-s4; the rest that a dry run judges passes
    # --keep hands back the notebook as it ran (the student's cells only, with this run's outputs)
    kept = nbformat.read(str(tmp_path / "kept" / "executed.ipynb"), as_version=4)
    assert len(kept.cells) == len(nbformat.read(str(GAP / f"{name}.ipynb"), as_version=4).cells)
    assert any(cell.get("outputs") for cell in kept.cells if cell.cell_type == "code")
    counts = [cell.execution_count for cell in kept.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))  # numbered as if the student's cells ran alone
    assert (tmp_path / "kept" / "model.pt2").is_file()
    assert seconds < 180  # ~15 s on an idle 2-core CPU; a shared, loaded CI machine is far slower

