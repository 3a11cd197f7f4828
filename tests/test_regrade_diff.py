"""Re-grading into an existing --out: every student re-scored from the cached facts (nothing runs) unless the
rubric's run settings changed; changes.csv says who went up or down and who now passes or fails."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from grader.cli.main import main

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"

# 111: 11 code cells, 60% commented; 222: 7 code cells, 71% commented
RUBRIC = """\
id: cells
title: Cells
mode: static
items:
  - id: cells
    title: Enough code cells
    fact: notebook.code_cells
    ge: 3
    points: 5
    required: true
  - id: comments
    title: Some comments
    fact: notebook.comment_coverage
    ge: 0.1
    points: 5
"""


def _rows(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


@pytest.fixture()
def graded(tmp_path, capsys):
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb", folder / "smith_111_1_hw.ipynb")
    shutil.copy(NOTEBOOKS / "colab_badges.ipynb", folder / "doe_222_1_hw.ipynb")
    (tmp_path / "r.yaml").write_text(RUBRIC)
    out = tmp_path / "out"
    assert main([str(folder), "--rubric", str(tmp_path / "r.yaml"), "--out", str(out)]) == 0
    assert not (out / "changes.csv").exists() and json.loads((out / "grading.json").read_text())["rubric"] == "cells"
    capsys.readouterr()
    return folder, out


def _regrade(tmp_path, folder, out, capsys, text: str, name: str = "r2.yaml") -> str:
    (tmp_path / name).write_text(text)
    assert main([str(folder), "--rubric", str(tmp_path / name), "--out", str(out)]) == 0
    return " ".join(capsys.readouterr().err.split())  # rich wraps lines to the terminal's width


def test_a_changed_threshold_and_points_rescore_from_cache_and_write_the_flips(graded, tmp_path, capsys):
    folder, out = graded
    facts_before = {s: (out / s / "facts.json").read_text() for s in ("111", "222")}
    err = _regrade(tmp_path, folder, out, capsys, RUBRIC.replace("ge: 3", "ge: 8").replace(
        "ge: 0.1\n    points: 5", "ge: 0.1\n    points: 8"))
    assert "2 re-scored from cached facts (not run), 0 run" in err, err
    assert "2 changed: 1 up, 1 down; pass flips: 0 now pass, 1 now fails" in err
    assert "before: rubric cells, as graded from" in err and "(since changed)" in err
    changes = _rows(out / "changes.csv")
    assert changes["111"] | {} == {**changes["111"], "before_score": "10", "after_score": "13", "delta": "3",
                                   "passed_flipped": "FALSE", "items_changed": "comments 5→8"}
    assert changes["222"] | {} == {**changes["222"], "before_score": "10", "after_score": "8", "delta": "-2",
                                   "before_passed": "TRUE", "after_passed": "FALSE", "passed_flipped": "TRUE",
                                   "items_changed": "cells 5→0; comments 5→8"}
    assert _rows(out / "gradebook.previous.csv")["222"]["score"] == "10"  # the "before", kept for audit
    assert _rows(out / "gradebook.csv")["222"]["score"] == "8"
    assert {s: (out / s / "facts.json").read_text() for s in ("111", "222")} == facts_before


def test_the_same_rubric_again_changes_nothing_and_says_so(graded, tmp_path, capsys):
    folder, out = graded
    err = _regrade(tmp_path, folder, out, capsys, RUBRIC, name="r.yaml")
    assert "re-grade: 0 changed: 0 up, 0 down" in err and "before: rubric cells, the same file, unchanged" in err
    assert list(_rows(out / "changes.csv")) == []


def test_a_changed_run_setting_runs_again_and_a_changed_file_only_that_one(graded, tmp_path, capsys):
    folder, out = graded
    err = _regrade(tmp_path, folder, out, capsys, RUBRIC.replace("mode: static", "mode: static\nmodel: net"))
    assert "0 re-scored from cached facts (not run), 2 run" in err, err
    assert "measured under other run settings (variable model→net, variable_named false→true)" in err, err
    anew = (NOTEBOOKS / "colab_badges.ipynb").read_text() + "\n"  # 111 hands in anew: 222's notebook, not byte-equal
    (folder / "smith_111_1_hw.ipynb").write_text(anew)
    err = _regrade(tmp_path, folder, out, capsys, RUBRIC.replace("mode: static", "mode: static\nmodel: net")
                   .replace("ge: 3", "ge: 8"), name="r3.yaml")
    assert "1 re-scored from cached facts (not run), 1 run" in err, err
    assert "other run settings" not in err
    assert _rows(out / "changes.csv")["111"]["items_changed"] == "cells 5→0"  # 7 cells now: under 8


def test_over_another_rubric_the_summary_says_the_before_is_another_rubric(graded, tmp_path, capsys):
    folder, out = graded
    err = _regrade(tmp_path, folder, out, capsys, RUBRIC.replace("id: cells", "id: cells-v2")
                   .replace("title: Cells", "title: Cells again"))
    assert "before: rubric cells (Cells), another rubric than cells-v2 (Cells again)" in err
    assert "compare two rubrics' scores" in err


def test_a_setting_newer_than_the_grading_record_is_named_as_not_recorded():
    from grader.cache import FactsCache
    from grader.regrade import rerun_reasons
    from grader.settings import Options

    options = Options(mode="evaluate")
    recorded = {"settings": {k: v for k, v in FactsCache.settings(options).items() if k != "sandbox"}}
    assert rerun_reasons(recorded, options) == ["sandbox not recorded→true"]
    assert rerun_reasons({"settings": FactsCache.settings(options)}, options) == []
    recorded["settings"]["unseen"] = None  # recorded as none: said so, not "not recorded"
    assert "unseen none→not recorded" in rerun_reasons(recorded, options)
