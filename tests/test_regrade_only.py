"""`--only ID`: that student is graded again, everyone else's cached result is kept without running anything."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from grader.api import grade_class, load_rubric, options_for
from grader.cli.main import main
from grader.errors import GraderError
from tests.static_rubrics import CELLS

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"


@pytest.fixture()
def graded(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb", folder / "smith_111_1_hw.ipynb")
    shutil.copy(NOTEBOOKS / "colab_badges.ipynb", folder / "doe_222_1_hw.ipynb")
    rubric_path = tmp_path / "r.yaml"
    rubric_path.write_text(CELLS)
    out = tmp_path / "out"
    assert main([str(folder), "--rubric", str(rubric_path), "--out", str(out)]) in (0, 1)
    return folder, rubric_path, out


def test_only_regrades_that_student_and_keeps_the_rest_cached(graded, capsys):
    folder, rubric_path, out = graded
    shutil.copy(NOTEBOOKS / "invalid_json.ipynb", folder / "lee_333_1_hw.ipynb")  # never graded
    rubric = load_rubric(rubric_path)
    started = []
    results = list(grade_class(folder, rubric, options_for(rubric), out=out, only="222",
                               on_event=lambda kind, s, r: started.append((kind, s.student))))
    assert {r.student: r.cached for r in results} == {"111": True, "222": False}
    assert ("start", "222") in started and ("start", "111") not in started and ("skipped", "333") in started
    capsys.readouterr()
    assert main([str(folder), "--rubric", str(rubric_path), "--out", str(out), "--only", "111"]) in (0, 1)
    err = capsys.readouterr().err
    assert "left out 333" in err
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        assert [r["student"] for r in csv.DictReader(fh)] == ["111", "222"]


def test_only_an_unknown_student_says_which_ids_there_are(graded):
    folder, rubric_path, out = graded
    rubric = load_rubric(rubric_path)
    with pytest.raises(GraderError, match="no submission of that student") as err:
        list(grade_class(folder, rubric, options_for(rubric), out=out, only="112"))
    assert "did you mean 111" in err.value.fix and "111, 222" in err.value.fix


def test_byte_for_byte_copies_graded_at_once_share_the_cache_without_a_crash(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from grader.cache import FactsCache
    from grader.facts import Facts

    cache = FactsCache(tmp_path)
    facts = Facts.model_validate({"notebook": {"code_cells": 3}})
    with ThreadPoolExecutor(8) as pool:  # the same key from many slots: two students, one notebook
        list(pool.map(lambda _: cache.put("samekey", facts, 1.0), range(64)))
    assert cache.get("samekey")[0] == facts
    assert [p.name for p in (tmp_path / ".cache").iterdir()] == ["samekey.json"]
